"""What stages are built from, and what each pipeline is for (kept apart from the registry so
that stage modules can name them without importing the registry)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from groundgate.agents.service import Agents
from groundgate.cache.response import ResponseCache
from groundgate.config import AppConfig, ModelConfig, Settings
from groundgate.config_guards import GuardsConfig, effective_guards
from groundgate.gateway.admission import Admission
from groundgate.guards.review_queue import ReviewQueue
from groundgate.observe.cost import PriceTable
from groundgate.observe.drift import DriftMonitor
from groundgate.observe.metrics import Metrics
from groundgate.observe.otel import OtelExport
from groundgate.observe.trace_writer import TraceWriter
from groundgate.prompts.registry import PromptRegistry
from groundgate.providers.catalog import Catalog
from groundgate.reliability.fallback import FallbackChain
from groundgate.retrieval.embedding import EmbeddingService
from groundgate.retrieval.search import Retriever
from groundgate.store import Store
from groundgate.tools.base import ToolSet


@dataclass(frozen=True, slots=True)
class Services:
    """What stages are built from (the container builds these once)."""

    settings: Settings
    catalog: Catalog
    chain: FallbackChain
    retriever: Retriever
    cache: ResponseCache | None
    prices: PriceTable
    metrics: Metrics
    traces: TraceWriter
    admission: Admission
    store: Store
    embeddings: Mapping[str, EmbeddingService]  # by embedder name
    reviews: ReviewQueue  # the human review queue (the review stage queues answers there)
    prompts: PromptRegistry  # versions and labels (the prompt and split stages resolve there)
    drift: DriftMonitor | None = None  # None: drift is off (the record stage skips it)
    otel: OtelExport | None = None  # the OpenTelemetry export, when configured
    agents: Agents | None = None  # agent runs (the agent and agent_fallback stages)
    # The configured tools (tools/registry.py); ``tools.for_app(app, principal.allowed_tools)``
    # gives what an agent run may call. Started and closed with the gateway.
    tools: ToolSet | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """What a pipeline is for: an app, or a plain model (``app`` None)."""

    name: str
    app: AppConfig | None = None
    model: ModelConfig | None = None

    def guards(self, settings: Settings) -> GuardsConfig:
        """This target's guards: its own table over ``[guards]``."""
        own = self.app.guards if self.app is not None else None
        if own is None and self.model is not None:
            own = self.model.guards
        return effective_guards(settings.guards, own)
