"""Agent config: an app's ``mode`` and the limits of its bounded tool loop (``[apps.NAME.agent]``),
and the gateway-wide ``[agent]`` section (where pending approvals are announced). Kept beside
``config.py``, which imports it, as ``config_cache.py`` is.

An app in ``mode = "agent"`` answers with the loop (``agents/loop.py``); one in the default
``mode = "pipeline"`` with ``agent_fallback = true`` runs its pipeline and the loop only when the
pipeline abstained or an output guard rejected its answer (README, "Agents").
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

AppMode = Literal["pipeline", "agent"]


class AgentLimits(BaseModel):
    """What one run may spend before it stops with what it has (``stop_reason`` says which)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_steps: int = Field(8, ge=1, le=200)  # model calls
    max_tool_calls: int = Field(16, ge=0, le=1000)
    max_tokens: int = Field(50_000, ge=1)  # prompt + completion, over the whole run
    max_cost_usd: float = Field(0.50, gt=0)
    deadline_s: float = Field(60.0, gt=0)  # wall clock spent running (not waiting for approval)
    # The same tool with the same arguments proposed this many times in one run: a loop.
    loop_repeats: int = Field(3, ge=2, le=100)
    # Run the calls the model proposes in one step concurrently.
    parallel_tools: bool = True
    # A run waiting for approval longer than this expires (status ``expired``).
    approval_timeout_s: float = Field(24 * 3600.0, gt=0)


class AgentSettings(BaseModel):
    """``[agent]``: the approval webhook, notified of every new pending approval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # POSTed {run_id, tenant, app, pending, url} for each run that starts waiting. None: off.
    approval_webhook_url: str | None = None
    # A header sent with each notification, its value read from the environment variable
    # ``approval_webhook_secret_env`` (never from the file): the receiver checks it.
    approval_webhook_secret_header: str = "x-groundgate-webhook-secret"
    approval_webhook_secret_env: str | None = None
    approval_webhook_timeout_s: float = Field(3.0, gt=0, le=60)
    # The gateway's public base URL, for the run's link in the notification (None: a path).
    public_url: str | None = None

    @field_validator("approval_webhook_url", "public_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value is not None else None
