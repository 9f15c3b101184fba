"""Error mapping and redaction, unit level."""

from __future__ import annotations

import orjson
from pydantic import ValidationError

from groundgate.api.errors import error_response
from groundgate.api.schemas import ChatCompletionRequest
from groundgate.errors import (
    ModelNotFound,
    PayloadTooLarge,
    ProviderError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.validation import describe_validation


def validation_errors(data: dict[str, object]) -> list[object]:
    try:
        ChatCompletionRequest.model_validate(data)
    except ValidationError as exc:
        return list(exc.errors())
    raise AssertionError("expected a validation error")


def test_status_codes() -> None:
    cases = [
        (ModelNotFound("x"), 404),
        (PayloadTooLarge("x"), 413),
        (UpstreamRejected("x"), 400),
        (ProviderError("x", transient=True), 502),
        (UpstreamRateLimited("x", transient=True, retry_after=2.4), 429),
        (UpstreamUnavailable("x", transient=True), 503),
        (UpstreamTimeout("x"), 504),
    ]
    for exc, status in cases:
        resp = error_response(exc)
        assert resp.status_code == status
        body = orjson.loads(resp.body)
        assert set(body["error"]) == {"message", "type", "param", "code"}
    assert (
        error_response(UpstreamRateLimited("x", transient=True, retry_after=2.4)).headers[
            "retry-after"
        ]
        == "2"
    )


def test_validation_message_is_one_sentence() -> None:
    message, param = describe_validation(
        validation_errors(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 5}
        )
    )
    assert param == "temperature"
    assert message.startswith("Invalid request: 'temperature'")
    assert "input_value" not in message and "https://" not in message


def test_validation_hides_union_tags() -> None:
    message, param = describe_validation(
        validation_errors({"model": "m", "messages": [{"role": "tool", "content": "x"}]})
    )
    assert param == "messages.0.tool_call_id"
    assert "'messages.0.tool_call_id' is required" in message


def test_many_problems_are_summarised() -> None:
    message, _ = describe_validation(
        validation_errors({"messages": "no", "temperature": 9, "top_p": 9, "n": 0})
    )
    assert "more problems" in message
