"""Requests as the pipeline runs them: a chat (a model or an app, by name) or a grounded
question (``/v1/ask``), each with its trace and deadline."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from groundgate.config import AppConfig, Settings
from groundgate.errors import InvalidRequest, NotFound
from groundgate.guards.schema import answer_checker
from groundgate.observe.trace import Trace, new_trace_id
from groundgate.pipeline.context import RequestContext
from groundgate.providers.base import ChatCall

if TYPE_CHECKING:
    from groundgate.gateway.principal import Principal


def request_timeout_s(
    settings: Settings, requested: float | None, app: AppConfig | None = None
) -> float:
    """A request's deadline in seconds: the app's, else the server's. The client's
    (``x-groundgate-timeout``) may shorten it, never extend it: a longer one is clamped."""
    ceiling = (app.timeout_s if app is not None else None) or settings.server.request_timeout_s
    return ceiling if requested is None else min(requested, ceiling)


def chat_request(
    settings: Settings,
    model: str,
    call: ChatCall,
    *,
    stream: bool = False,
    include_usage: bool = False,
    timeout_s: float | None = None,
    principal: Principal | None = None,
    session: str | None = None,
    tier: str | None = None,
) -> RequestContext:
    """A chat to a model or an app. ``session`` (the ``x-groundgate-session`` header) keys A/B
    splits when the request's ``user`` field does not."""
    model, tier = split_pin(settings, model, tier)
    # A response format or tool whose schema is not JSON Schema is refused before anything
    # is sent upstream (the schema stage, which checks answers against them, runs after).
    answer_checker(call.params)
    app = settings.apps.get(model)
    ctx = _new_context(
        model,
        call,
        endpoint="chat.completions",
        timeout_s=request_timeout_s(settings, timeout_s, app),
        stream=stream,
        include_usage=include_usage,
        principal=principal,
    )
    user = call.params.get("user")
    ctx.sticky_key = sticky_key(user if isinstance(user, str) else None, session)
    ctx.tier = tier
    if app is not None:
        ctx.app, ctx.app_name = app, model
        ctx.trace.attrs["app"] = model
        _default_temperature(call, app)
    return ctx


def split_pin(settings: Settings, model: str, tier: str | None) -> tuple[str, str | None]:
    """The name the client called and the tier it pinned, from ``model: "NAME@TIER"`` (when
    ``NAME`` is an app or model and the whole is not) and the ``x-groundgate-tier`` header
    (``tier``). Whether the tier exists and may be pinned is the admit stage's check, once the
    key is known to may call ``NAME``."""
    name, at, pinned = model.rpartition("@")
    known = (settings.apps, settings.models)
    if not at or not pinned or any(model in t for t in known) or not any(name in t for t in known):
        return model, tier
    if tier is not None and tier != pinned:
        raise InvalidRequest(
            f"The model names the tier '{pinned}' and the header the tier '{tier}'; name one.",
            param="model",
            code="conflicting_tiers",
        )
    return name, pinned


def ask_request(
    settings: Settings,
    question: str,
    *,
    app: str | None = None,
    kb: str | None = None,
    model: str | None = None,
    top_k: int | None = None,
    filters: dict[str, Any] | None = None,
    history: list[dict[str, Any]] | None = None,
    stream: bool = False,
    timeout_s: float | None = None,
    principal: Principal | None = None,
    user: str | None = None,
    session: str | None = None,
    tier: str | None = None,
) -> RequestContext:
    """A grounded question: a named app, or an ad-hoc one over ``kb``; ``user`` (else
    ``session``) keys A/B splits, as for chats.

    A named app's ``top_k`` is a ceiling (a larger one asked for is capped to it) and its
    filters a floor (applied by the retrieve stage); an ad-hoc ask has neither."""
    if app is not None:
        config = settings.apps.get(app)
        if config is None:
            raise NotFound(f"No app named '{app}'.", param="app")
        if top_k is not None:
            top_k = min(top_k, config.top_k)
    elif kb is not None:
        config = AppConfig(knowledge_base=kb, model=model or "local")
    else:
        raise InvalidRequest("Name an 'app' or a knowledge base ('kb').", param="kb")
    updates: dict[str, Any] = {}
    if model is not None:
        # The client chose the model: no tier routing (its key needs a grant of the model).
        updates["model"], updates["route"] = model, None
    if top_k is not None:
        updates["top_k"] = top_k
    config = config.model_copy(update=updates)
    messages = [*(history or []), {"role": "user", "content": question}]
    ctx = _new_context(
        config.model,
        ChatCall(messages=messages),
        endpoint="ask",
        timeout_s=request_timeout_s(settings, timeout_s, config),
        stream=stream,
        principal=principal,
    )
    ctx.app, ctx.app_name, ctx.filters = config, app or f"kb:{kb}", dict(filters or {})
    ctx.sticky_key = sticky_key(user, session)
    ctx.tier = tier
    _default_temperature(ctx.call, config)
    ctx.trace.attrs["app"] = ctx.app_name
    return ctx


def _new_context(
    model: str,
    call: ChatCall,
    *,
    endpoint: str,
    timeout_s: float,
    stream: bool,
    principal: Principal | None,
    include_usage: bool = False,
) -> RequestContext:
    tenant = principal.tenant if principal is not None else "default"
    trace = Trace(
        id=new_trace_id(),
        tenant=tenant,
        endpoint=endpoint,
        model=model,
        stream=stream,
        key_id=principal.key_id if principal is not None else None,
    )
    return RequestContext(
        trace=trace,
        model=model,
        call=call,
        deadline=time.monotonic() + timeout_s,
        stream=stream,
        include_usage=include_usage,
        tenant=tenant,
        principal=principal,
    )


def sticky_key(user: str | None, session: str | None) -> str | None:
    """What an A/B split sticks to: the end user the client named, else its session (an empty
    one is none: it would put every such request in one variant)."""
    if user:
        return "user:" + user
    return "session:" + session if session else None


def _default_temperature(call: ChatCall, app: AppConfig) -> None:
    if "temperature" not in call.params and app.temperature is not None:
        call.params["temperature"] = app.temperature
