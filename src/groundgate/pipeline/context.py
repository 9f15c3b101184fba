"""The request context every stage reads and writes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from groundgate.config import AppConfig
from groundgate.observe.trace import Trace
from groundgate.providers.base import ChatCall, Chunk, Completion, Usage
from groundgate.providers.catalog import CatalogEntry


@dataclass(slots=True)
class RequestContext:
    trace: Trace
    model: str  # what the client asked for
    call: ChatCall
    deadline: float  # time.monotonic() by which the request must be answered
    stream: bool = False
    include_usage: bool = False
    tenant: str = "default"  # placeholder until authentication assigns one
    entry: CatalogEntry | None = None
    deployment: str | None = None
    source: str = "model"
    completion: Completion | None = None
    # For streams: the first chunk (already received, so fallback happens before the client
    # sees anything) and the rest.
    first_chunk: Chunk | None = None
    chunks: AsyncIterator[Chunk] | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    citations: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = False  # the trace has been recorded; later calls to finish are no-ops
    # Grounded requests (an app, or /v1/ask): what to search and what was found.
    app: AppConfig | None = None
    app_name: str | None = None
    query: str = ""
    filters: dict[str, Any] = field(default_factory=dict)
    passages: list[Any] = field(default_factory=list)  # retrieval.search.Passage
    sources: list[Any] = field(default_factory=list)  # prompts.assemble.NumberedSource
    retrieval_error: str | None = None
    abstained: bool = False
    # Set by a stage that answered the request (a cache hit): the stages after it are skipped.
    done: bool = False
    # The response cache: what the client allows (Cache-Control), and what happened.
    cache_read: bool = True
    cache_write: bool = True
    cache: Any = None  # cache.stage.CacheState when the request is cacheable

    @property
    def trace_id(self) -> str:
        return self.trace.id

    def remaining(self) -> float:
        return self.deadline - time.monotonic()
