"""Streams through a real gateway: bounded by the request deadline, falling back until the first
content, billed for what they generated however they end, and every choice's finish_reason."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.gateway.redis_server import RedisServer
from tests.servers import GatewayProcess, start_gateway

BODY = {"model": "gpt-fake", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def client(gateway: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0, timeout=20)


def events(resp: httpx.Response) -> list[Any]:
    return [orjson.loads(line[6:]) for line in resp.iter_lines() if line.startswith("data: {")]


def trace_of(gateway_url: str, trace_id: str, status: str, **headers: str) -> dict[str, Any]:
    """The trace once it is recorded with ``status`` (traces are written in batches)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        resp = httpx.get(f"{gateway_url}/v1/traces/{trace_id}", headers=headers)
        if resp.status_code == 200 and resp.json()["status"] == status:
            body: dict[str, Any] = resp.json()
            return body
        time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} never recorded as {status}")


def walk_away_after_first_content(url: str, body: dict[str, Any], **headers: str) -> str:
    """Start a stream, read its first piece of text, hang up; returns the trace id."""
    with httpx.stream(
        "POST", url + "/v1/chat/completions", json=body, headers=headers, timeout=20
    ) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break
        return resp.headers["x-groundgate-trace-id"]


def test_a_stream_running_at_the_deadline_ends_with_an_error_event(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    # 8 pieces 300 ms apart (2.1 s); the request may take 1 s.
    fake_upstream.script(Behavior(content="a b c d e f g h", stream_chunks=8, stream_delay_ms=300))
    started = time.monotonic()
    with httpx.stream(
        "POST",
        gateway.url + "/v1/chat/completions",
        json=BODY,
        headers={"x-groundgate-timeout": "1"},
        timeout=20,
    ) as resp:
        received = events(resp)
    assert time.monotonic() - started < 2.0
    pieces = [e for e in received if e.get("choices")]
    assert pieces and "error" in received[-1]
    error = received[-1]["error"]
    assert error["code"] == "upstream_timeout" and "deadline" in error["message"]
    fake_upstream.wait_for(lambda s: s["cancelled"] >= 1)  # the upstream request was closed


def test_a_stream_falls_back_until_its_first_content(
    client: openai.OpenAI, fake_upstream: FakeUpstream
) -> None:
    # The first try sends its role delta and breaks: the client must see none of it.
    fake_upstream.script(Behavior(stream_fail_after=0))
    chunks = list(
        client.chat.completions.create(
            model="gpt-fake", stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: hi"
    assert [c.choices[0].delta.role for c in chunks if c.choices].count("assistant") == 1
    assert len(fake_upstream.requests()) == 2


def test_a_stream_without_usage_is_billed_by_estimate(
    client: openai.OpenAI, gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    # An upstream that ignores include_usage: no usage chunk ever comes.
    fake_upstream.script(Behavior(content="one two three four", report_usage=False))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake",
        stream=True,
        stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "count"}],
    )
    chunks = list(raw.parse())
    usage = chunks[-1].usage
    assert usage is not None
    # 18 characters of text at 4 per token; the prompt as admission estimates it.
    assert usage.completion_tokens == 5 and usage.prompt_tokens > 0
    tail = (chunks[-1].model_extra or {})["groundgate"]
    assert tail["usage_estimated"] is True and tail["cost_usd"] > 0
    trace = trace_of(gateway.url, raw.headers["x-groundgate-trace-id"], "ok")
    assert trace["attrs"]["usage_estimated"] is True
    assert trace["usage"]["completion_tokens"] == 5 and trace["cost_usd"] == tail["cost_usd"]


def test_a_stream_the_client_left_is_billed_for_what_was_sent(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(
        Behavior(content="one two three four five six", stream_chunks=6, stream_delay_ms=500)
    )
    trace_id = walk_away_after_first_content(gateway.url, BODY)
    trace = trace_of(gateway.url, trace_id, "cancelled")
    assert trace["attrs"]["usage_estimated"] is True
    assert trace["usage"]["prompt_tokens"] > 0 and trace["usage"]["completion_tokens"] > 0
    assert trace["cost_usd"] > 0


def test_every_choice_keeps_its_finish_reason(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-fake", n=2, stream=True, messages=[{"role": "user", "content": "hi"}]
        )
    )
    finished = {c.index: c.finish_reason for chunk in chunks for c in chunk.choices}
    assert finished == {0: "stop", 1: "stop"}
    for index in (0, 1):
        text = "".join(
            c.delta.content or "" for chunk in chunks for c in chunk.choices if c.index == index
        )
        assert text == "echo: hi"


# --- budgets in a shared (Redis) limiter ------------------------------------------------------

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
METERED = """
[auth]
mode = "required"
[limits]
backend = "redis"
[traces]
flush_interval_ms = 20
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.gpt]
deployments = ["up:gpt-4o-mini"]
[models.free]
deployments = ["up:gpt-4o"]
[prices."up:gpt-4o-mini"]
input_per_mtok = 1000000.0
output_per_mtok = 1000000.0
"""


@pytest.fixture(scope="module")
def metered(
    fake_upstream_server: FakeUpstream,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("metered")
    gateway = start_gateway(
        METERED.format(fake=fake_upstream_server.url),
        workdir,
        env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY, "GROUNDGATE_REDIS_URL": redis_server.url},
    )
    yield gateway
    gateway.stop()


def budgeted_key(gateway: GatewayProcess) -> dict[str, str]:
    created = httpx.post(
        f"{gateway.url}/v1/admin/keys",
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        json={"name": "thrifty", "tenant": "t", "scopes": ["chat"], "daily_budget_usd": 0.5},
    )
    assert created.status_code == 201, created.text
    return {"Authorization": f"Bearer {created.json()['key']}"}


def assert_budget_spent(gateway: GatewayProcess, auth: dict[str, str]) -> None:
    """The spend reached the shared counters: the key's next request (even to a model that
    costs nothing) is refused by its budget."""
    free = {"model": "free", "messages": [{"role": "user", "content": "x"}]}
    deadline = time.monotonic() + 5
    while True:
        resp = httpx.post(gateway.url + "/v1/chat/completions", json=free, headers=auth)
        if resp.status_code != 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert resp.status_code == 429, resp.text
    assert resp.json()["error"]["code"] == "budget_exceeded"


def test_a_stream_the_client_left_uses_the_budget(
    metered: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    auth = budgeted_key(metered)
    fake_upstream.script(
        Behavior(content="one two three four five six", stream_chunks=6, stream_delay_ms=500)
    )
    trace_id = walk_away_after_first_content(metered.url, {**BODY, "model": "gpt"}, **auth)
    assert trace_of(metered.url, trace_id, "cancelled", **auth)["cost_usd"] > 0.5  # $1/token
    assert_budget_spent(metered, auth)


def test_a_stream_the_client_left_before_its_first_byte_is_traced_and_billed(
    metered: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    # The client gives up while the gateway waits for the first chunk: by the time the
    # response starts, nobody is there, and its body is never read.
    auth = budgeted_key(metered)
    fake_upstream.script(Behavior(latency_ms=800, stream_chunks=6, stream_delay_ms=300))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            metered.url + "/v1/chat/completions",
            json={**BODY, "model": "gpt"},
            headers=auth,
            timeout=httpx.Timeout(5, read=0.3),
        )
    deadline = time.monotonic() + 5
    while (usage := httpx.get(metered.url + "/v1/usage", headers=auth).json())["totals"][
        "requests"
    ] < 1:
        assert time.monotonic() < deadline, "the stream nobody read was never traced"
        time.sleep(0.05)
    assert usage["totals"]["prompt_tokens"] > 0 and usage["totals"]["cost_usd"] > 0.5
    assert_budget_spent(metered, auth)
    fake_upstream.wait_for(lambda s: s["cancelled"] >= 1)  # and its upstream was closed


def test_a_whole_answer_without_usage_is_billed_by_estimate(
    client: openai.OpenAI, gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    # The same upstream, not streamed: its body has no "usage" at all.
    fake_upstream.script(Behavior(content="one two three four", report_usage=False))
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-fake", messages=[{"role": "user", "content": "count"}]
    )
    reply = raw.parse()
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5 and reply.usage.prompt_tokens > 0
    extra = (reply.model_extra or {})["groundgate"]
    assert extra["usage_estimated"] is True and extra["cost_usd"] > 0
    trace = trace_of(gateway.url, raw.headers["x-groundgate-trace-id"], "ok")
    assert trace["attrs"]["usage_estimated"] is True and trace["cost_usd"] == extra["cost_usd"]
