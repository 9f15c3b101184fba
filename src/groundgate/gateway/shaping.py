"""Request shaping: size and count limits, the per-key output cap, and the token estimate
that token rate limits charge up front (reconciled with actual usage afterwards)."""

from __future__ import annotations

from typing import Any

from groundgate.config import LimitsConfig
from groundgate.errors import InvalidRequest
from groundgate.gateway.principal import Principal
from groundgate.providers.base import ChatCall

# Roughly four characters per token for English; the estimate only has to be fair, since
# the actual count replaces it once the upstream reports usage.
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


def _text_length(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
    return 0


def estimate_input_tokens(messages: list[dict[str, Any]]) -> int:
    chars = sum(_text_length(m.get("content")) for m in messages if isinstance(m, dict))
    return chars // _CHARS_PER_TOKEN + _TOKENS_PER_MESSAGE * len(messages)


def estimate_output_tokens(chars: int) -> int:
    """Tokens of ``chars`` characters of generated text (rounded up: a piece was generated)."""
    return -(-chars // _CHARS_PER_TOKEN)


def shape_chat(call: ChatCall, principal: Principal, limits: LimitsConfig) -> int:
    """Check and cap the request in place; returns the tokens to charge up front."""
    if len(call.messages) > limits.max_messages:
        raise InvalidRequest(
            f"At most {limits.max_messages} messages per request.",
            param="messages",
            code="too_many_messages",
        )
    estimate = estimate_input_tokens(call.messages)
    if estimate > limits.max_input_tokens:
        raise InvalidRequest(
            f"The input is about {estimate} tokens; the limit is {limits.max_input_tokens}.",
            param="messages",
            code="context_length_exceeded",
        )
    requested = call.params.get("max_completion_tokens") or call.params.get("max_tokens")
    cap = principal.max_tokens
    if cap is not None:
        if isinstance(requested, int) and requested > cap:
            raise InvalidRequest(
                f"max_tokens may be at most {cap} for this API key.",
                param="max_tokens",
                code="max_tokens_exceeded",
            )
        if requested is None:
            call.params["max_tokens"] = cap
            requested = cap
    return estimate + (requested if isinstance(requested, int) else 0)
