"""The groundedness guard's verdict on one answer, computed off the event loop.

Scoring embeds the answer's sentences and the passages' (``grounding.py``: the int8 MiniLM,
loaded once per process on first use), which is CPU work: it runs in a small pool of its own,
bounded by the request's deadline (a verdict that comes too late is dropped, and queued work
is cancelled). Sentences that say the documents do not answer (``ABSTAINS``) are not claims:
they are neither scored as unsupported nor counted in the answer's score.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from groundgate.guards.grounding import Groundedness, GroundednessScorer, answer_score
from groundgate.guards.output import ABSTAINS

# Scorings at once in this process; more wait (each within its request's deadline). The
# int8 embedder runs one ONNX thread per call, so this many cores at most.
WORKERS = 2
_POOL = ThreadPoolExecutor(WORKERS, thread_name_prefix="groundgate-grounding")


@dataclass(frozen=True, slots=True)
class Verdict:
    score: float  # the answer's groundedness (``grounding.answer_score`` of its claims)
    unsupported: tuple[str, ...]  # its sentences whose support is below the threshold
    sentences: int  # the sentences scored


def judge(groundedness: Groundedness, threshold: float) -> Verdict:
    claims = [s for s in groundedness.sentences if not ABSTAINS.search(s.text)]
    unsupported = tuple(s.text for s in claims if s.support < threshold)
    return Verdict(answer_score(claims), unsupported, len(claims))


@functools.cache
def _scorer() -> GroundednessScorer:
    # Loads the embedder (once per process, under its own lock): in a pool thread only.
    return GroundednessScorer()


def _score(passages: Sequence[str], answer: str, question: str, threshold: float) -> Verdict:
    return judge(_scorer().score(passages, answer, question), threshold)


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
