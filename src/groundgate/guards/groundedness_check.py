"""The groundedness guard's verdict on one answer, computed off the event loop.

Scoring embeds the answer's sentences and the passages' (``grounding.py``: the int8 MiniLM,
loaded once per process on first use), which is CPU work: it runs in a small pool of its own,
bounded by the request's deadline (a verdict that comes too late is dropped, and queued work
is cancelled). Embedding is nearly all of a score's cost (about 4 ms a sentence here), and a
knowledge base's passages come back request after request: the vectors of the last
``REMEMBERED`` sentences are kept, so a repeat passage costs nothing to embed again.

Sentences that say the documents do not answer (``ABSTAINS``) are not claims: they are
neither scored as unsupported nor counted in the answer's score.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from groundgate.guards.grounding import (
    EMBEDDER,
    Groundedness,
    GroundednessScorer,
    SentenceEmbedder,
    answer_score,
)
from groundgate.guards.output import ABSTAINS
from groundgate.providers.local.models import process_models

# Scorings at once in this process; more wait (each within its request's deadline). The
# int8 embedder runs one ONNX thread per call, so this many cores at most.
WORKERS = 2
_POOL = ThreadPoolExecutor(WORKERS, thread_name_prefix="groundgate-grounding")
# Sentence vectors kept (384 float32 each: ~6 MB).
REMEMBERED = 4096


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float  # the answer's groundedness (``grounding.answer_score`` of its claims)
    unsupported: tuple[str, ...]  # its sentences whose support is below the threshold
    sentences: int  # the sentences scored


def judge(groundedness: Groundedness, threshold: float) -> Verdict:
    claims = [s for s in groundedness.sentences if not ABSTAINS.search(s.text)]
    unsupported = tuple(s.text for s in claims if s.support < threshold)
    return Verdict(answer_score(claims), unsupported, len(claims))


class RememberingEmbedder:
    """An embedder that keeps the vectors of the sentences it embedded last (thread-safe)."""

    def __init__(self, embedder: SentenceEmbedder, size: int = REMEMBERED) -> None:
        self._embedder = embedder
        self._size = size
        self._vectors: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        with self._lock:
            known = {t: v for t in texts if (v := self._vectors.get(t)) is not None}
            for text in known:
                self._vectors.move_to_end(text)
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            fresh = self._embedder.embed(missing)
            with self._lock:
                for text, vector in zip(missing, fresh, strict=True):
                    known[text] = self._vectors[text] = vector
                while len(self._vectors) > self._size:
                    self._vectors.popitem(last=False)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([known[t] for t in texts])


@functools.cache
def process_scorer() -> GroundednessScorer:
    """The process's scorer, shared by the output guard and the eval scorers (one remembered
    set of sentence vectors). Loads the embedder on first use (once per process, under its own
    lock): call it from a worker thread."""
    return GroundednessScorer(RememberingEmbedder(process_models().embedder(EMBEDDER)))


def _score(passages: Sequence[str], answer: str, question: str, threshold: float) -> Verdict:
    return judge(process_scorer().score(passages, answer, question), threshold)


async def score_answer(
    passages: Sequence[str], answer: str, question: str, threshold: float, timeout: float
) -> Verdict:
    """The verdict on ``answer`` against ``passages``. Raises TimeoutError when it is not ready
    within ``timeout`` seconds, and ``ModelLoadFailed`` when the embedder cannot load."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(max(timeout, 0.0)):
        return await loop.run_in_executor(
            _POOL, _score, tuple(passages), answer, question, threshold
        )
