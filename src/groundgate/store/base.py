"""The Store protocol. Every query takes the tenant, so isolation holds by construction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Sequence

    from groundgate.store.eval_runs import EvalRunStore
    from groundgate.store.feedback import FeedbackStore
    from groundgate.store.keys import KeyStore
    from groundgate.store.knowledge import KnowledgeStore
    from groundgate.store.ledger import LedgerStore
    from groundgate.store.prompts import PromptStore
    from groundgate.store.retention import RetentionStore
    from groundgate.store.reviews import ReviewStore
    from groundgate.store.runs import RunStore
    from groundgate.store.traces import TraceRow
    from groundgate.store.variants import VariantTrace


class Store(Protocol):
    @property
    def knowledge(self) -> KnowledgeStore: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def retention(self) -> RetentionStore: ...

    @property
    def reviews(self) -> ReviewStore: ...

    @property
    def feedback(self) -> FeedbackStore: ...

    @property
    def ledger(self) -> LedgerStore: ...

    @property
    def runs(self) -> RunStore: ...

    @property
    def prompts(self) -> PromptStore: ...

    @property
    def eval_runs(self) -> EvalRunStore: ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ping(self) -> bool: ...

    async def write_traces(self, traces: Sequence[TraceRow]) -> None: ...

    async def get_trace(self, tenant: str, trace_id: str) -> dict[str, Any] | None: ...

    async def usage(
        self, tenant: str, since: float, until: float, key_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests, tokens, spend and errors per (model, key) in [since, until)."""
        ...

    async def variant_traces(
        self, tenant: str, target: str, since: float, until: float
    ) -> list[VariantTrace]:
        """The traces of ``target``'s A/B split (the split stage's ``attrs.variant``) in
        [since, until), oldest first."""
        ...
