"""One request must not stall the worker (issue 12, item 1): while a worst-case question is
answered, ``/healthz`` keeps answering promptly."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.e2e.test_grounding import HANDBOOK, post_docs
from tests.servers import GatewayProcess

# 64 KB of full stops and a letter: on the code before the fix, normalising it for the cache
# key alone held the event loop for ~10 s (the trailing-punctuation regex retried the run from
# each of its characters), and sentence splitting did the same.
WORST_CASE = "." * 65536 + "x"
PROMPT_S = 2.0  # generous: /healthz answers in milliseconds


def test_healthz_answers_while_a_pathological_question_runs(gateway: GatewayProcess) -> None:
    # The app's knowledge base must exist, or the cache (and retrieval) never read the question.
    post_docs(gateway, "handbook", HANDBOOK)
    body = {"model": "handbook", "messages": [{"role": "user", "content": WORST_CASE}]}
    slowest = 0.0
    with ThreadPoolExecutor(1) as pool, httpx.Client(timeout=60) as probe:
        slow = pool.submit(httpx.post, f"{gateway.url}/v1/chat/completions", json=body, timeout=60)
        while not slow.done():
            started = time.monotonic()
            assert probe.get(f"{gateway.url}/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.05)
        answer = slow.result()
    assert slowest < PROMPT_S, f"/healthz took {slowest:.1f}s while the question ran"
    assert answer.status_code == 200, answer.text
