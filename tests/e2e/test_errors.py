"""Every error is an OpenAI-style body with the right status, through real HTTP."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess

ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def post(
    gateway: GatewayProcess,
    content: bytes | str,
    path: str = "/v1/chat/completions",
) -> httpx.Response:
    return httpx.post(
        gateway.url + path,
        content=content,
        headers={"content-type": "application/json"},
        timeout=20,
    )


def assert_error(resp: httpx.Response, status: int, code: str | None = None) -> dict[str, object]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == ERROR_KEYS
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code
    err: dict[str, object] = body["error"]
    return err


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.status_code == 404
    assert "no-such-model" in info.value.message
    assert info.value.code == "model_not_found"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"[1, 2]", "JSON object"),
        (b'{"model": "local"}', "'messages' is required"),
        (b'{"model": "local", "messages": []}', "messages"),
        (b'{"model": "local", "messages": [{"role": "wizard", "content": "x"}]}', "wizard"),
        (
            b'{"model": "local", "messages": [{"role": "user", "content": "x"}], "temperature": 9}',
            "temperature",
        ),
        (b'{"model": "local", "messages": [{"role": "tool", "content": "x"}]}', "tool_call_id"),
    ],
)
def test_malformed_bodies_are_400_without_raw_dump(
    gateway: GatewayProcess, body: bytes, needle: str
) -> None:
    err = assert_error(post(gateway, body), 400)
    message = str(err["message"])
    assert needle in message
    assert "pydantic" not in message and "input_value" not in message and "loc" not in message


def test_validation_error_names_the_param(gateway: GatewayProcess) -> None:
    body = b'{"model": "local", "messages": [{"role": "user", "content": "x"}], "top_p": 3}'
    err = assert_error(post(gateway, body), 400)
    assert err["param"] == "top_p"


def test_client_cannot_steer_upstream(gateway: GatewayProcess, fake_upstream: FakeUpstream) -> None:
    body = (
        b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "x"}], '
        b'"api_base": "http://169.254.169.254/latest"}'
    )
    err = assert_error(post(gateway, body), 400, "forbidden_parameter")
    assert err["param"] == "api_base"
    assert fake_upstream.requests() == []


def test_body_too_large_is_413(gateway: GatewayProcess) -> None:
    big = (
        b'{"model": "local", "messages": [{"role": "user", "content": "' + b"x" * 300_000 + b'"}]}'
    )
    assert_error(post(gateway, big), 413, "request_too_large")


def test_body_too_large_without_content_length_is_413(gateway: GatewayProcess) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        yield b'{"model": "local", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 10_000
        yield b'"}]}'

    resp = httpx.post(
        gateway.url + "/v1/chat/completions",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=20,
    )
    assert_error(resp, 413)


def test_unknown_route_and_method(gateway: GatewayProcess) -> None:
    assert_error(httpx.get(gateway.url + "/v1/nope"), 404)
    assert_error(httpx.get(gateway.url + "/v1/chat/completions"), 405)


@pytest.mark.parametrize(
    ("path", "allow"),
    [
        ("/v1/chat/completions", "POST"),
        # Admin paths: tests/api/test_admin_routes.py (admin routes are closed in open mode).
        ("/v1/knowledge-bases/kb/documents", "GET, POST"),
        ("/v1/knowledge-bases/kb/documents/a/b", "GET, DELETE"),
    ],
)
def test_405_allow_lists_every_method_of_the_path(
    gateway: GatewayProcess, path: str, allow: str
) -> None:
    # Found by schemathesis: Allow named only the methods of the first route for the path.
    resp = httpx.request("PATCH", gateway.url + path)
    assert_error(resp, 405)
    assert resp.headers["allow"] == allow


@pytest.mark.parametrize(
    ("behavior", "status", "code"),
    [
        # Transient failures are retried; when every try failed, a clear 503.
        (Behavior(status=500), 503, "upstream_unavailable"),
        (Behavior(status=503), 503, "upstream_unavailable"),
        (Behavior(malformed=True), 503, "upstream_unavailable"),
        (Behavior(truncated=True), 503, "upstream_unavailable"),
        (Behavior(reset=True), 503, "upstream_unavailable"),
        # Permanent: not retried.
        (Behavior(status=400, error_message="tool schema invalid"), 400, "upstream_rejected"),
        (
            Behavior(status=400, error_message="maximum context length is 8192 tokens"),
            400,
            "context_length_exceeded",
        ),
        (Behavior(status=401), 502, "upstream_error"),
    ],
)
def test_upstream_failures_map_to_status(
    gateway: GatewayProcess,
    fake_upstream: FakeUpstream,
    behavior: Behavior,
    status: int,
    code: str,
) -> None:
    fake_upstream.set_default(behavior)
    resp = post(gateway, b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "x"}]}')
    err = assert_error(resp, status, code)
    assert "x-groundgate-trace-id" in resp.headers
    tries = len(fake_upstream.requests())
    assert tries == (2 if behavior.status in (None, 200, 500, 503) else 1)
    if behavior.status == 400:
        assert behavior.error_message in str(err["message"])


def test_upstream_429_passes_retry_after(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    # Longer than the configured max_retry_after_s (1 s): not waited for, passed on.
    fake_upstream.set_default(Behavior(status=429, retry_after=7))
    resp = post(gateway, b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "x"}]}')
    assert_error(resp, 429)
    assert resp.headers["retry-after"] == "7"


def test_upstream_hang_is_504_within_timeout(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(hang=True))
    started = time.monotonic()
    resp = post(gateway, b'{"model": "gpt-fake", "messages": [{"role": "user", "content": "x"}]}')
    assert_error(resp, 504, "upstream_timeout")
    # Two tries of the provider's 2 s timeout; never the whole request deadline (8 s).
    assert time.monotonic() - started < 6
    fake_upstream.wait_for(lambda s: s["cancelled"] >= 1)


def test_all_deployments_down_is_503(gateway: GatewayProcess) -> None:
    resp = post(gateway, b'{"model": "all-dead", "messages": [{"role": "user", "content": "x"}]}')
    err = assert_error(resp, 503, "upstream_unavailable")
    assert "cannot connect" in str(err["message"])


def test_mid_stream_failure_ends_with_error_event(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(content="a b c d e f", stream_chunks=6, stream_fail_after=2))
    stream = client.chat.completions.create(
        model="gpt-fake", stream=True, messages=[{"role": "user", "content": "x"}]
    )
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received.append(chunk)
    assert received  # the first tokens did reach the client before the failure


def test_stream_failure_before_first_token_is_a_plain_error(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.set_default(Behavior(status=503))
    with pytest.raises(openai.InternalServerError) as info:
        list(
            client.chat.completions.create(
                model="gpt-fake", stream=True, messages=[{"role": "user", "content": "x"}]
            )
        )
    assert info.value.status_code == 503


def test_client_disconnect_cancels_upstream(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Behavior(content="one two three four five six", stream_chunks=6, stream_delay_ms=1000)
    )
    body = b'{"model": "gpt-fake", "stream": true, "messages": [{"role": "user", "content": "x"}]}'
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=20,
    ) as resp:
        trace_id = resp.headers["x-groundgate-trace-id"]
        lines = resp.iter_lines()
        first = next(line for line in lines if line.startswith("data:"))
        assert "chat.completion.chunk" in first
    # Closing our side must close the gateway's upstream request long before it would end.
    fake_upstream.wait_for(lambda s: s["cancelled"] >= 1, timeout=5)
    deadline = time.monotonic() + 5
    trace = None
    while time.monotonic() < deadline:
        resp2 = httpx.get(f"{gateway.url}/v1/traces/{trace_id}")
        if resp2.status_code == 200 and resp2.json()["status"] == "cancelled":
            trace = resp2.json()
            break
        time.sleep(0.1)
    assert trace is not None, "the trace of a disconnected stream was not recorded as cancelled"
