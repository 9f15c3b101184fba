"""One chat call to a configured model, in-process through the Container: the path
``POST /v1/chat/completions`` takes (``Container.new_chat`` + ``complete``), so the model's
deployments, fallbacks, retries, guards and prices apply, and the call is traced like any other.
The LLM judge and the dataset synthesiser call models through this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from groundgate.container import Container
from groundgate.providers.base import ChatCall


@dataclass(frozen=True, slots=True)
class ModelReply:
    text: str
    cost_usd: float  # by the prices in config ([prices."provider:model"])
    upstream_calls: int  # 0 when the gateway's response cache answered
    trace_id: str


async def chat_once(
    runtime: Container,
    model: str,
    messages: list[dict[str, str]],
    *,
    temperature: float = 0.0,
    max_tokens: int | None = None,
) -> ModelReply:
    """The model's reply to ``messages``. Raises the gateway's errors (``errors.py``)."""
    params: dict[str, Any] = {"temperature": temperature}
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    ctx = runtime.new_chat(model, ChatCall(messages=list(messages), params=params))
    await runtime.complete(ctx)
    completion = ctx.completion
    message = (completion.choices[0].get("message") or {}) if completion else {}
    calls = 0 if ctx.source == "cache" else 1
    return ModelReply(str(message.get("content") or ""), ctx.cost_usd, calls, ctx.trace_id)
