"""The cross-encoder path loads an operator-supplied ONNX model and tokenizer from a folder.

No cross-encoder ships in any PyPI package, so the test builds a tiny one: its "relevance"
is how often the passage (segment B) contains the word "target".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from groundgate.retrieval.rerank import Candidate, CrossEncoderReranker
from groundgate.store.knowledge import StoredChunk

VOCAB = {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "[PAD]": 3, "target": 4, "other": 5, "word": 6}


def build_model(folder: Path) -> None:
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "s"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["b", "s"])
    types = helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, ["b", "s"])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 1])
    nodes = [
        helper.make_node(
            "Constant",
            [],
            ["target"],
            value=helper.make_tensor("t", TensorProto.INT64, [], [VOCAB["target"]]),
        ),
        helper.make_node("Equal", ["input_ids", "target"], ["hit"]),
        helper.make_node("Cast", ["hit"], ["hit_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["token_type_ids"], ["seg_f"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["hit_f", "seg_f"], ["in_passage"]),
        helper.make_node("Mul", ["in_passage", "mask_f"], ["counted"]),
        helper.make_node(
            "Constant", [], ["axes"], value=helper.make_tensor("a", TensorProto.INT64, [1], [1])
        ),
        helper.make_node("ReduceSum", ["counted", "axes"], ["logits"], keepdims=1),
    ]
    graph = helper.make_graph(nodes, "tiny-cross-encoder", [ids, mask, types], [logits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(folder / "model.onnx"))
    tokenizer = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    tokenizer.save(str(folder / "tokenizer.json"))


def candidate(cid: str, text: str, rank: int) -> Candidate:
    return Candidate(StoredChunk(cid, cid, 0, text, "", "", [], {}), 1.0 / rank, rank)


async def test_cross_encoder_reorders_by_model_score(tmp_path: Path) -> None:
    build_model(tmp_path)
    reranker = CrossEncoderReranker(str(tmp_path))
    candidates = [
        candidate("a", "other word", 1),
        candidate("b", "target target word", 2),
        candidate("c", "target other", 3),
    ]
    # "target" in the query (segment A) must not count: only the passage is scored.
    ranked = await reranker.rerank("target target target", None, candidates)
    assert [c.chunk.id for c in ranked] == ["b", "c", "a"]
    assert [c.rank for c in ranked] == [1, 2, 3]
    assert np.allclose([c.score for c in ranked], [2.0, 1.0, 0.0])


async def test_missing_files_are_named(tmp_path: Path) -> None:
    reranker = CrossEncoderReranker(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"model\.onnx"):
        await reranker.rerank("q", None, [candidate("a", "word", 1)])
