"""Embeddings of many texts, kept on disk by text hash so a second training run (or the
benchmark after training) does not embed 15,000 prompts again (~minutes on a laptop CPU).

One ``.npz`` file per embedder: ``keys`` (sha256 hex of each text) and ``vectors`` (float32).
The int8 embedder gives the same vector for a text whether it is embedded alone or in a
batch, so a cached vector is the one a fresh run would compute.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
Embed = Callable[[list[str]], npt.ArrayLike]
DEFAULT_CACHE_DIR = Path(".bench-cache") / "routing"


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_file(cache_dir: Path, embedder: str) -> Path:
    return cache_dir / f"embeddings-{embedder}.npz"


def _load(path: Path) -> dict[str, Vectors]:
    if not path.is_file():
        return {}
    with np.load(path) as data:
        keys = [str(k) for k in data["keys"]]
        vectors = np.asarray(data["vectors"], dtype=np.float32)
    return {k: vectors[i] for i, k in enumerate(keys)}


def embed_cached(
    texts: Sequence[str], embed: Embed, *, embedder: str, cache_dir: Path | None
) -> Vectors:
    """One row per text, in order: cached vectors where known, ``embed`` (called once, with
    the missing texts in order, each once) for the rest; the cache is then rewritten whole
    (atomically). ``cache_dir`` None: no cache."""
    path = cache_file(cache_dir, embedder) if cache_dir is not None else None
    known = _load(path) if path is not None else {}
    keys = [text_key(t) for t in texts]
    missing: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in known:
            missing.setdefault(key, text)
    if missing:
        fresh = np.asarray(embed(list(missing.values())), dtype=np.float32)
        if fresh.shape[0] != len(missing):
            raise ValueError(f"embedder gave {fresh.shape[0]} vectors for {len(missing)} texts")
        known.update(zip(missing, fresh, strict=True))
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            ordered = sorted(known)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, keys=np.array(ordered), vectors=np.vstack([known[k] for k in ordered]))
            os.replace(tmp, path)
    if not keys:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([known[k] for k in keys])
