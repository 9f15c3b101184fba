"""The request context: what one request carries through the pipeline.

Every field says which stage writes it; the others only read it. The runner (``runner.py``)
writes ``answer`` itself only through the stage that answered.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from groundgate.config import AppConfig
from groundgate.observe.trace import Trace
from groundgate.providers.base import ChatCall, Chunk, Completion, Usage

if TYPE_CHECKING:
    from groundgate.agents.loop import RunState
    from groundgate.cache.response import CacheState
    from groundgate.gateway.admission import Ticket
    from groundgate.gateway.principal import Principal
    from groundgate.guards.decision import GuardReport
    from groundgate.pipeline.answer import AnswerRecord
    from groundgate.prompts.assemble import NumberedSource
    from groundgate.providers.catalog import CatalogEntry
    from groundgate.retrieval.search import Passage
    from groundgate.routing.decision import RouteDecision
    from groundgate.store.knowledge import Vector


@dataclass(slots=True)
class RequestContext:
    # -- the request, as the API (``pipeline/requests.py``) built it ----------------------
    trace: Trace  # started with the request; finished by the record stage's exit
    model: str  # what the client asked for
    call: ChatCall  # what is sent upstream; the prompt stage rewrites it for grounded requests
    deadline: float  # time.monotonic() by which the request must be answered
    stream: bool = False
    include_usage: bool = False
    tenant: str = "default"
    principal: Principal | None = None  # None in-process (CLI, evals): no admission
    # Grounded requests (an app, or /v1/ask): the app as it runs, and what to search with.
    app: AppConfig | None = None
    app_name: str | None = None
    filters: dict[str, Any] = field(default_factory=dict)
    # A tier the client pinned (``x-groundgate-tier`` or ``model: "NAME@TIER"``), set by the API.
    tier: str | None = None
    # The end user or session the client named (the ``user`` field, else the
    # ``x-groundgate-session`` header), set by the API: an A/B split sticks to it.
    sticky_key: str | None = None
    # What the client allows the cache (Cache-Control), set by the API.
    cache_read: bool = True
    cache_write: bool = True

    # -- written by the stages ------------------------------------------------------------
    ticket: Ticket | None = None  # admit: what the request holds until its exit settles it
    entry: CatalogEntry | None = None  # route: the model that generates
    route: RouteDecision | None = None  # route (cascade: escalations): the tier and why
    variant: str | None = None  # split: the A/B variant this request is in
    # split: the model a variant generates with, instead of the target's own; the route stage
    # resolves this one when set (for an app, ``app.model`` is changed to it as well).
    variant_model: str | None = None
    cache: CacheState | None = None  # cache: the lookup's identity and outcome
    query: str = ""  # retrieve: the standalone search query
    passages: list[Passage] = field(default_factory=list)  # retrieve
    retrieval_error: str | None = None  # retrieve, when it degraded
    sources: list[NumberedSource] = field(default_factory=list)  # prompt: numbered sources
    # The stage that answers sets ``answer`` (generate; cache on a hit, which also sets
    # ``done`` so the stages after it are skipped). A whole answer is a stream of one chunk
    # whose ``delta`` is the whole message (see ``pipeline/answer.py``).
    answer: AsyncIterator[Chunk] | None = None
    done: bool = False
    deployment: str | None = None  # generate (or cache: the deployment that answered then)
    source: str = "model"  # generate / cache: model | rag | fallback | cache
    usage: Usage = field(default_factory=Usage)  # generate (its exit estimates missing usage)
    # Further calls upstream for this request's answer (schema: re-asks), by the deployment
    # that served each; generate's exit adds them to ``usage`` and ``cost_usd``.
    extra_usage: list[tuple[str, Usage]] = field(default_factory=list)
    cost_usd: float = 0.0  # generate's exit
    citations: list[dict[str, Any]] = field(default_factory=list)  # generate / cite / cache
    abstained: bool = False  # cite / cache
    # guard_in / guard_out / schema / review: what the guards decided (None: no guard ran).
    guards: GuardReport | None = None
    # guard_in, reversible PII redaction: placeholder -> original, restored in the answer.
    restore: dict[str, str] = field(default_factory=dict)
    # The question's embedding(s), computed once and shared by the guards and the cache
    # (embedder model key, normalised text) -> vector.
    vectors: dict[tuple[str, str], Vector] = field(default_factory=dict)

    # agent / agent_fallback: the agent run this request started (the API reports it), and
    # the client's own messages, kept before the prompt stage grounds them (agent_fallback).
    agent: RunState | None = None
    agent_messages: list[dict[str, Any]] | None = None

    # -- written by the runner --------------------------------------------------------------
    delivered: AnswerRecord | None = None  # the answer as the client got it (every exit reads)
    completion: Completion | None = None  # a whole answer, once complete

    @property
    def trace_id(self) -> str:
        return self.trace.id

    def remaining(self) -> float:
        return self.deadline - time.monotonic()
