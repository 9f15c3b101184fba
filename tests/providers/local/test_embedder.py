from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from groundgate.providers.local import embedder as embedder_module
from groundgate.providers.local.embedder import (
    DIMENSION,
    INT8_MODEL_ID,
    MiniLMEmbedder,
    find_tokenizer_path,
)

ROOT = Path(__file__).resolve().parents[3]


def test_vectors_are_unit_length_float32_384(embedder: MiniLMEmbedder) -> None:
    vectors = embedder.embed(["A man is eating food.", "", "x"])
    assert vectors.shape == (3, DIMENSION) == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer(embedder: MiniLMEmbedder) -> None:
    food, bread, horse = embedder.embed(
        ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]
    )
    assert float(food @ bread) > float(food @ horse) + 0.2


def test_batch_equals_one_by_one_and_keeps_order(embedder: MiniLMEmbedder) -> None:
    # Mixed lengths and more texts than one sub-batch (32), so sorting and splitting matter.
    texts = [f"Sentence number {i} " + "with some padding words " * (i % 7) for i in range(45)]
    batch = embedder.embed(texts)
    for i in (0, 3, 17, 31, 32, 44):
        np.testing.assert_allclose(batch[i], embedder.embed([texts[i]])[0], atol=1e-5)
    reversed_batch = embedder.embed(texts[::-1])
    np.testing.assert_allclose(reversed_batch[::-1], batch, atol=1e-5)


def test_solo_session_gives_the_same_vectors_alone_and_under_concurrency(
    embedder: MiniLMEmbedder,
) -> None:
    # A lone call runs on the two-thread session, overlapping calls on the one-thread one:
    # which one ran must never show in the vectors (they are cached and compared at 0.99).
    solo = MiniLMEmbedder(solo_threads=2)
    texts = [
        f"How do I learn {topic} quickly" + " and well" * (i % 5)
        for i, topic in enumerate(["Python", "Go", "chess", "piano", "Spanish", "calculus"] * 4)
    ]
    expected = embedder.embed(texts)
    alone = np.vstack([solo.embed([t]) for t in texts])
    np.testing.assert_allclose(alone, expected, atol=1e-5)
    with ThreadPoolExecutor(4) as pool:
        together = np.vstack(list(pool.map(lambda t: solo.embed([t]), texts)))
    np.testing.assert_allclose(together, expected, atol=1e-5)


def test_thread_counts_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="solo_threads"):
        MiniLMEmbedder(solo_threads=0)


def test_empty_batch_has_384_columns(embedder: MiniLMEmbedder) -> None:
    empty = embedder.embed([])
    assert empty.shape == (0, DIMENSION)
    assert empty.dtype == np.float32


def test_inputs_are_truncated_to_256_tokens(embedder: MiniLMEmbedder) -> None:
    # "word" is one token; 254 of them plus [CLS] and [SEP] fill the 256-token window.
    long, window = embedder.embed(["word " * 1000, "word " * 254])
    np.testing.assert_allclose(long, window, atol=1e-5)


def test_count_tokens_counts_everything_without_special_tokens(embedder: MiniLMEmbedder) -> None:
    assert embedder.count_tokens(["Hello world", "", "word " * 1000]) == [2, 0, 1000]
    assert embedder.count_tokens([]) == []


def test_truncate_to_tokens_keeps_original_text(embedder: MiniLMEmbedder) -> None:
    assert embedder.truncate_to_tokens("Paris is the Capital of France.", 4) == (
        "Paris is the Capital",
        True,
    )
    assert embedder.truncate_to_tokens("Short.", 10) == ("Short.", False)


def test_the_tokenizer_ships_in_the_package_as_published() -> None:
    # No other package is needed for it (a plain `pip install groundgate` serves), and its
    # bytes are the published ones (the script checks the SHA-256, with its NOTICE beside it).
    path = find_tokenizer_path()
    assert path.is_relative_to(Path(embedder_module.__file__).parent)
    assert (path.parent / "NOTICE").is_file() and (path.parent / "LICENSE").is_file()
    check = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor_tokenizer.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert embedder_module.find_model_path().suffix == ".onnx"


def test_int8_variant_is_made_once_and_close_to_float32(
    embedder: MiniLMEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GROUNDGATE_MODEL_CACHE", str(tmp_path / "models"))
    texts = ["How do I learn Python quickly?", "What is the capital of France?", "x"]
    fast = MiniLMEmbedder(int8=True)
    assert fast.model_id == INT8_MODEL_ID
    made = list((tmp_path / "models").iterdir())
    assert len(made) == 1 and made[0].suffix == ".onnx"  # no leftovers of the quantising
    vectors = fast.embed(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Different numbers (an embedder of its own) but the same meaning.
    cosines = (vectors * embedder.embed(texts)).sum(axis=1)
    assert np.all(cosines > 0.97) and np.all(cosines < 0.99999)
    # The second load reuses the file, and computes the same vectors.
    stamp = made[0].stat().st_mtime_ns
    again = MiniLMEmbedder(int8=True)
    assert made[0].stat().st_mtime_ns == stamp
    np.testing.assert_allclose(again.embed(texts), vectors, atol=1e-6)


def test_int8_variant_without_a_writable_cache_uses_a_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("GROUNDGATE_MODEL_CACHE", str(blocked / "models"))
    assert MiniLMEmbedder(int8=True).embed(["hello"]).shape == (1, DIMENSION)


def test_int8_vectors_do_not_depend_on_the_batch() -> None:
    # Activations are quantised per run: embedded with other (longer) texts, a text would get
    # another vector than alone, and the cache could not compare them at 0.98.
    fast = MiniLMEmbedder(int8=True)
    texts = ["How do I learn Python?", "A much longer question about " + "many things " * 20]
    together = fast.embed(texts)
    alone = np.vstack([fast.embed([t]) for t in texts])
    np.testing.assert_array_equal(together, alone)


def test_int8_vectors_do_not_depend_on_the_session() -> None:
    # An int8 embedder given a two-thread session for lone calls (local.solo_threads): which
    # session ran must not show in a vector the cache compares at 0.985.
    one_thread = MiniLMEmbedder(int8=True)
    solo = MiniLMEmbedder(int8=True, solo_threads=2)
    texts = [f"How many {thing} fit in a car" + " really" * i for i, thing in enumerate("abcdef")]
    expected = np.vstack([one_thread.embed([t]) for t in texts])
    alone = np.vstack([solo.embed([t]) for t in texts])
    np.testing.assert_allclose(alone, expected, atol=1e-5)
    with ThreadPoolExecutor(3) as pool:
        together = np.vstack(list(pool.map(lambda t: solo.embed([t]), texts)))
    np.testing.assert_allclose(together, expected, atol=1e-5)
