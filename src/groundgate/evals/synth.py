"""Draft eval cases from a knowledge base with a configured model (``groundgate datasets
synth``), for a person to review before they join a golden set.

Chunks of the knowledge base are sampled (``seed`` makes the sample repeatable); the model
(called in-process through the Container, ``model_call.chat_once``) writes one question and
its answer from each, with the prompt ``eval-synth`` of the registry. Each case keeps what it
came from: ``relevant_ids`` (the chunk's document), ``reference_context`` (the chunk's text),
``answers`` (the model's answer) and ``label: "synthetic-draft"``. A reply that is not the
JSON asked for, a call that fails, or a question drafted twice is skipped and counted, never
fatal.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from groundgate.container import Container
from groundgate.errors import GroundgateError
from groundgate.evals.dataset import EvalCase
from groundgate.evals.judge import latest, parse_json_reply
from groundgate.evals.model_call import chat_once
from groundgate.prompts.files import PromptTable, load_prompt_files
from groundgate.prompts.format import PromptVersion
from groundgate.store.knowledge import StoredChunk

SYNTH_PROMPT = "eval-synth"
LABEL = "synthetic-draft"
# A chunk shorter than this holds no fact worth a question (a heading, a stray line).
MIN_CHUNK_CHARS = 40
MAX_PASSAGE_CHARS = 4_000
MAX_ANSWER_CHARS = 500
_PAGE = 100


@dataclass(slots=True)
class SynthResult:
    prompt: str
    cases: list[dict[str, Any]] = field(default_factory=list)  # JSONL rows, in sample order
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    chunks: int = 0  # chunks in the knowledge base
    cost_usd: float = 0.0
    upstream_calls: int = 0

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


async def chunk_ids(runtime: Container, tenant: str, kb: str) -> list[str]:
    """Every chunk id of ``kb`` (``DOC#POSITION``, as ingestion names them), in document
    order."""
    ids: list[str] = []
    offset = 0
    while True:
        page = await runtime.store.knowledge.list_documents(tenant, kb, limit=_PAGE, offset=offset)
        ids += [f"{doc.id}#{n}" for doc in page for n in range(doc.chunk_count)]
        if len(page) < _PAGE:
            return ids
        offset += _PAGE


def draft_case(reply_text: str, chunk: StoredChunk, number: int) -> dict[str, Any] | str:
    """The case drafted from ``chunk`` by the model's reply, or the reason it is skipped."""
    reply = parse_json_reply(reply_text)
    if reply is None:
        return "unparseable"
    question, answer = reply.get("question"), reply.get("answer")
    if not isinstance(question, str) or not question.strip():
        return "no_question"
    if not isinstance(answer, str) or not answer.strip() or len(answer) > MAX_ANSWER_CHARS:
        return "no_answer"
    row = {
        "id": f"synth-{number}",
        "question": question.strip(),
        "answers": [answer.strip()],
        "relevant_ids": [chunk.doc_id],
        "reference_context": [chunk.text],
        "label": LABEL,
    }
    try:
        EvalCase.model_validate(row)
    except ValidationError:
        return "invalid"
    return row


async def synthesize(
    runtime: Container,
    kb: str,
    model: str,
    n: int,
    *,
    tenant: str = "default",
    seed: int | None = None,
    concurrency: int = 4,
    prompts: PromptTable | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> SynthResult:
    """Draft up to ``n`` cases from ``kb``'s chunks with ``model``. ``on_progress(done,
    skipped)`` is called after each chunk."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    prompt: PromptVersion = latest(
        prompts if prompts is not None else load_prompt_files([]), SYNTH_PROMPT
    )
    result = SynthResult(prompt.ref)
    ids = await chunk_ids(runtime, tenant, kb)
    result.chunks = len(ids)
    rng = random.Random(seed)
    # A sample larger than n leaves room for short chunks and skipped replies.
    sample = rng.sample(ids, min(len(ids), 2 * n))
    chunks = {c.id: c for c in await runtime.store.knowledge.get_chunks(tenant, kb, sample)}
    usable = [chunks[i] for i in sample if i in chunks]
    short = [c for c in usable if len(c.text.strip()) < MIN_CHUNK_CHARS]
    usable = [c for c in usable if len(c.text.strip()) >= MIN_CHUNK_CHARS][:n]
    for _ in short[: max(0, n - len(usable))]:
        result.skip("short_chunk")
    drafted: list[dict[str, Any] | str | None] = [None] * len(usable)
    semaphore = asyncio.Semaphore(max(1, concurrency))
    done = 0

    async def one(index: int, chunk: StoredChunk) -> None:
        nonlocal done
        messages = prompt.render_messages(
            {"title": chunk.title or chunk.doc_id, "passage": chunk.text[:MAX_PASSAGE_CHARS]}
        )
        async with semaphore:
            try:
                reply = await chat_once(runtime, model, messages, temperature=0.3)
            except GroundgateError:
                drafted[index] = "failed"
            else:
                result.cost_usd += reply.cost_usd
                result.upstream_calls += reply.upstream_calls
                drafted[index] = draft_case(reply.text, chunk, index + 1)
        done += 1
        if on_progress is not None:
            on_progress(done, sum(isinstance(d, str) for d in drafted))

    await asyncio.gather(*(one(i, chunk) for i, chunk in enumerate(usable)))
    seen: set[str] = set()
    for outcome in drafted:
        if isinstance(outcome, dict):
            key = " ".join(str(outcome["question"]).lower().split())
            if key in seen:
                result.skip("duplicate")
                continue
            seen.add(key)
            result.cases.append(outcome)
        else:
            result.skip(outcome or "failed")
    return result
