"""Who is calling: the tenant, the key, what it may do and within which limits.

Authentication (``gateway/auth.py``, called by ``api/auth.py``) turns a request's credentials
into a ``Principal``, which ``api`` puts on ``request.state.principal``; everything after that
reads only the principal. In open mode (no keys configured, loopback only) every request is the
``default`` tenant's local administrator, without the admin routes unless ``auth.open_admin``
opens them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from groundgate.config_tools import permissions_within
from groundgate.errors import GroundgateError

# ``metrics``: the full /metrics and /readyz detail (deployments, providers, spend).
# ``review``: list and decide the tenant's human review queue (/v1/reviews).
# ``feedback``: give feedback on the tenant's answers (/v1/feedback) and nothing else, for a
# key that an app's front end holds (keys with ``chat`` or ``review`` may give it too).
# ``approve``: list the tenant's agent runs and approve or reject their irreversible tool calls
# (/v1/runs).
SCOPES = frozenset(
    {"chat", "embeddings", "ingest", "metrics", "review", "feedback", "approve", "admin"}
)
DEFAULT_TENANT = "default"


class PermissionDenied(GroundgateError):
    status_code = 403
    error_type = "permission_error"
    code = "insufficient_permissions"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-minute request and token rates and concurrent requests; None means unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent: int | None = None


@dataclass(frozen=True, slots=True)
class Budgets:
    """Spend ceilings in USD; None means none."""

    daily_usd: float | None = None
    monthly_usd: float | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    tenant: str
    key_id: str | None  # None: the bootstrap admin key, or open mode
    scopes: frozenset[str]
    # Models and apps this key may call; None means all.
    models: frozenset[str] | None = None
    key_limits: Limits = field(default_factory=Limits)
    key_budgets: Budgets = field(default_factory=Budgets)
    tenant_limits: Limits = field(default_factory=Limits)
    tenant_budgets: Budgets = field(default_factory=Budgets)
    max_tokens: int | None = None  # cap on max_tokens per request
    expires_at: float | None = None  # Unix time the key stops working; None: never
    # Agent tools this key may call: [tools] names, SERVER__TOOL, or mcp:SERVER for all of a
    # server's tools (config_tools.py); None means every tool the app offers.
    tools: frozenset[str] | None = None
    # The same for every key of the tenant; a key gets only what both allow (allowed_tools).
    tenant_tools: frozenset[str] | None = None

    @property
    def allowed_tools(self) -> frozenset[str] | None:
        """The tools this key may call: its own permissions within its tenant's (None: all)."""
        return permissions_within(self.tools, self.tenant_tools)

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise PermissionDenied(f"This API key lacks the '{scope}' scope.")

    def made(self, key_id: str | None) -> bool:
        """Whether this key made what ``key_id`` was recorded on (a run, a held request), and so
        may poll it without a scope; a principal without a key id (the bootstrap admin key, open
        mode) made nothing."""
        return self.key_id is not None and key_id == self.key_id

    def may_call(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            # Same wording as an unknown model: a key must not learn what else exists.
            from groundgate.errors import ModelNotFound

            raise ModelNotFound(f"The model '{model}' does not exist.", param="model")


OPEN_MODE = Principal(tenant=DEFAULT_TENANT, key_id=None, scopes=SCOPES)
