"""Creating API keys and tenants: the validated request for each, the record it makes, and
the view shown for a stored one (never a secret or its hash).

One definition for both doors: the admin API (api/routes/admin.py, which adds who may grant
what, gateway/grants.py) and ``groundgate keys`` (the operator, who may do anything).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from groundgate.config_tools import permission_problem
from groundgate.errors import InvalidRequest
from groundgate.gateway.grants import expiry_within
from groundgate.gateway.keys import generate_key
from groundgate.gateway.principal import SCOPES, Principal
from groundgate.store.keys import ApiKeyRecord, TenantRecord

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
DEFAULT_SCOPES = ["chat", "embeddings"]
MAX_EXPIRY_S = 10 * 366 * 86400.0
NAME_RULE = "must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"


def _name(value: str) -> str:
    if not NAME.fullmatch(value):
        raise ValueError(NAME_RULE)
    return value


def _scope(value: str) -> str:
    if value not in SCOPES:
        raise ValueError(f"must be one of {sorted(SCOPES)}")
    return value


Name = Annotated[str, AfterValidator(_name)]
Scope = Annotated[str, AfterValidator(_scope)]
ModelName = Annotated[str, Field(min_length=1, max_length=200)]


def _tool_name(value: str) -> str:
    problem = permission_problem(value)
    if problem:
        raise ValueError(f"{problem} (a tool name, SERVER__TOOL or mcp:SERVER)")
    return value


ToolName = Annotated[str, AfterValidator(_tool_name)]
Count = Annotated[int, Field(ge=1, le=1_000_000_000)]
Usd = Annotated[float, Field(ge=0, le=1_000_000_000, allow_inf_nan=False)]


class LimitFields(BaseModel):
    # Strict: JSON true is not the number 1, "5" is not 5.
    model_config = ConfigDict(extra="forbid", strict=True)

    requests_per_minute: Count | None = None
    tokens_per_minute: Count | None = None
    concurrent: Count | None = None
    daily_budget_usd: Usd | None = None
    monthly_budget_usd: Usd | None = None


class CreateKey(LimitFields):
    name: Name
    tenant: Name | None = None  # None: the caller's own tenant
    scopes: list[Scope] = Field(default_factory=lambda: list(DEFAULT_SCOPES), min_length=1)
    models: list[ModelName] | None = Field(None, max_length=1000)  # None: all
    expires_in_s: float | None = Field(None, gt=0, le=MAX_EXPIRY_S, allow_inf_nan=False)
    expires_at: float | None = Field(None, gt=0, allow_inf_nan=False)  # Unix time
    max_tokens: Count | None = None
    # Agent tools the key may call ([tools] names, SERVER__TOOL, mcp:SERVER); None: all.
    tools: list[ToolName] | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _one_expiry(self) -> CreateKey:
        if self.expires_in_s is not None and self.expires_at is not None:
            raise ValueError("give expires_in_s or expires_at, not both")
        return self


class TenantBody(LimitFields):
    name: Name
    # Agent tools the tenant's keys may call at most (a key gets its own within these); None: all.
    tools: list[ToolName] | None = Field(None, max_length=1000)


def check_name(value: str, param: str) -> str:
    """``value`` if it is a valid name (for a tenant or key), else ``InvalidRequest``."""
    if not NAME.fullmatch(value):
        raise InvalidRequest(f"'{param}' {NAME_RULE}.", param=param)
    return value


def new_key(
    body: CreateKey, tenant: str, now: float, creator: Principal | None = None
) -> tuple[str, ApiKeyRecord]:
    """A fresh key for ``body``: the full key (to show once) and the record to store. Made by
    ``creator`` (None: the operator's CLI), it expires no later than ``creator`` does."""
    full_key, key_id, secret_hash = generate_key()
    expires_at = body.expires_at
    if body.expires_in_s is not None:
        expires_at = now + body.expires_in_s
    if creator is not None:
        expires_at = expiry_within(creator, expires_at)
    if expires_at is not None and expires_at <= now:
        raise InvalidRequest("'expires_at' is in the past.", param="expires_at")
    record = ApiKeyRecord(
        id=key_id,
        tenant=tenant,
        name=body.name,
        secret_hash=secret_hash,
        scopes=sorted(set(body.scopes)),
        models=None if body.models is None else sorted(set(body.models)),
        created_at=now,
        expires_at=expires_at,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
        concurrent=body.concurrent,
        daily_budget_usd=body.daily_budget_usd,
        monthly_budget_usd=body.monthly_budget_usd,
        max_tokens=body.max_tokens,
        tools=None if body.tools is None else sorted(set(body.tools)),
    )
    return full_key, record


def key_view(key: ApiKeyRecord, now: float) -> dict[str, Any]:
    """A key as the API shows it: everything but its secret and the secret's hash."""
    return {
        "object": "api_key",
        "id": key.id,
        "tenant": key.tenant,
        "name": key.name,
        "status": key.status(now),
        "scopes": key.scopes,
        "models": key.models,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "requests_per_minute": key.requests_per_minute,
        "tokens_per_minute": key.tokens_per_minute,
        "concurrent": key.concurrent,
        "daily_budget_usd": key.daily_budget_usd,
        "monthly_budget_usd": key.monthly_budget_usd,
        "max_tokens": key.max_tokens,
        "tools": key.tools,
    }


def tenant_view(tenant: TenantRecord) -> dict[str, Any]:
    return {
        "object": "tenant",
        "name": tenant.name,
        "created_at": tenant.created_at,
        "requests_per_minute": tenant.requests_per_minute,
        "tokens_per_minute": tenant.tokens_per_minute,
        "concurrent": tenant.concurrent,
        "daily_budget_usd": tenant.daily_budget_usd,
        "monthly_budget_usd": tenant.monthly_budget_usd,
        "tools": tenant.tools,
    }


def tenant_record(body: TenantBody, now: float) -> TenantRecord:
    return TenantRecord(
        name=body.name,
        created_at=now,
        requests_per_minute=body.requests_per_minute,
        tokens_per_minute=body.tokens_per_minute,
        concurrent=body.concurrent,
        daily_budget_usd=body.daily_budget_usd,
        monthly_budget_usd=body.monthly_budget_usd,
        tools=None if body.tools is None else sorted(set(body.tools)),
    )
