"""OpenTelemetry export end to end: a real gateway exporting over OTLP to a real receiver built
on the official OTLP protos (``groundgate.testing.otlp_receiver``), the fake upstream behind it.

Chat, streamed, cached, grounded and failing requests are checked span by span (names, parents,
kinds, ``gen_ai.*`` attributes, status), the client's ``traceparent`` is continued, no secret or
prompt text leaves unless an app opted in, and the GenAI metrics count what happened. A second
gateway is configured by the standard ``OTEL_*`` variables alone (gRPC, the v1.36.0 baseline
conventions); a third exports to a collector that never answers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from groundgate.testing.otlp_receiver import (
    MetricPoint,
    OtlpReceiver,
    ReceivedSpan,
    StalledCollector,
)
from tests.servers import GatewayProcess, start_gateway

pytestmark = pytest.mark.e2e

UPSTREAM_KEY = "sk-upstream-" + "k3y" * 8  # held by the gateway: must never be exported
CLIENT_SECRET = "sk-proj-CLIENTSECRET0123456789abcdef"
BASE = """
[auth]
mode = "open"
[reliability]
breaker_failures = 100000
breaker_min_calls = 100000
[providers.up]
type = "openai"
base_url = "{fake}/v1"
api_key_env = "GG_OTEL_UPSTREAM_KEY"
[models.gpt]
deployments = ["up:gpt-4o-mini"]
[models.metered]
deployments = ["up:gpt-4o-mini"]
[models.cached]
deployments = ["up:gpt-4o-mini"]
cache = {{ exact = true }}
[knowledge_bases.notes]
mode = "keyword"
[apps.desk]
knowledge_base = "notes"
model = "gpt"
[apps.open-desk]
knowledge_base = "notes"
model = "gpt"
"""
OTEL = """
[otel]
endpoint = "{endpoint}"
schedule_delay_ms = 50
metrics_interval_s = 0.3
capture_content = ["open-desk"]
[logging]
format = "json"
"""
CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"
SERVER, CLIENT, INTERNAL, ERROR = 2, 3, 1, 2


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as rx:
        rx.start_http()
        rx.start_grpc()
        yield rx


@pytest.fixture(scope="module")
def gateway(
    fake_upstream_server: FakeUpstream,
    receiver: OtlpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    config = BASE.format(fake=fake_upstream_server.url) + OTEL.format(endpoint=receiver.http_url)
    process = start_gateway(
        config,
        tmp_path_factory.mktemp("otel"),
        env={
            "GG_OTEL_UPSTREAM_KEY": UPSTREAM_KEY,
            "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental",
        },
    )
    try:
        yield process
    finally:
        process.stop()


def chat(gateway: GatewayProcess, model: str, text: str, **extra: object) -> httpx.Response:
    headers = {"authorization": f"Bearer {CLIENT_SECRET}"}
    headers.update(extra.pop("headers", {}))  # type: ignore[call-overload]
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=30)


def spans_of(receiver: OtlpReceiver, trace_id: str, least: int = 1) -> list[ReceivedSpan]:
    """The spans of one request (by its groundgate trace id), once they have all arrived."""

    def mine() -> list[ReceivedSpan]:
        spans = receiver.spans()
        roots = [s for s in spans if s.attributes.get("groundgate.trace_id") == trace_id]
        if not roots:
            return []
        ids = {roots[0].trace_id}
        return [s for s in spans if s.trace_id in ids]

    assert receiver.wait_for(lambda _: len(mine()) >= least), f"no spans for {trace_id}"
    time.sleep(0.2)  # a batch may have split the request's spans
    return mine()


def root_of(spans: list[ReceivedSpan]) -> ReceivedSpan:
    (root,) = [s for s in spans if s.kind == SERVER]
    return root


def named(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def test_chat_is_a_root_with_stage_and_attempt_spans_continuing_the_client_trace(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    fake_upstream.script(Behavior(content="Paris.", prompt_tokens=9, completion_tokens=2))
    resp = chat(
        gateway,
        "gpt",
        "Capital of France?",
        temperature=0.25,
        max_tokens=40,
        headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
    )
    assert resp.status_code == 200, resp.text
    spans = spans_of(receiver, resp.headers["x-groundgate-trace-id"], least=4)

    root = root_of(spans)
    assert root.name == "chat gpt" and root.kind == SERVER
    # The client's trace goes on: its trace id, its span as the root's parent.
    assert root.trace_id == CLIENT_TRACE and root.parent_span_id == CLIENT_SPAN
    assert root.status_code == 0
    attrs = root.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai" and "gen_ai.system" not in attrs
    assert attrs["gen_ai.request.model"] == "gpt"
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"] == 9 and attrs["gen_ai.usage.output_tokens"] == 2
    assert attrs["gen_ai.response.finish_reasons"] == ["stop"]
    assert attrs["gen_ai.request.temperature"] == 0.25 and attrs["gen_ai.request.max_tokens"] == 40
    assert attrs["groundgate.trace_id"] == resp.headers["x-groundgate-trace-id"]
    assert root.schema_url == "https://opentelemetry.io/schemas/1.41.0"
    assert root.resource["service.name"] == "groundgate" and root.transport == "http"

    generate = named(spans, "generate")
    assert named(spans, "route").parent_span_id == root.span_id == generate.parent_span_id
    assert generate.kind == INTERNAL
    attempt = named(spans, "chat gpt-4o-mini")
    assert attempt.kind == CLIENT and attempt.parent_span_id == generate.span_id
    assert attempt.attributes["gen_ai.provider.name"] == "openai"
    assert attempt.attributes["server.address"] == "127.0.0.1"
    assert attempt.attributes["server.port"] == int(fake_upstream.url.rsplit(":", 1)[1])
    assert attempt.attributes["gen_ai.usage.output_tokens"] == 2
    # Children lie within the request's time.
    assert root.start_ns <= generate.start_ns <= attempt.start_ns <= attempt.end_ns <= root.end_ns
    # The request's log line names the exported trace and its root span: logs and spans join.
    logged = request_line(gateway, resp.headers["x-groundgate-trace-id"])
    assert (logged["otel_trace_id"], logged["span_id"]) == (CLIENT_TRACE, root.span_id)


def request_line(gateway: GatewayProcess, trace_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in gateway.log_text().splitlines():
            if line.startswith("{") and f'"trace_id":"{trace_id}"' in line.replace(" ", ""):
                entry: dict[str, object] = orjson.loads(line)
                if "status" in entry:
                    return entry
        time.sleep(0.05)
    raise AssertionError(f"no request log line for trace {trace_id}")


def test_without_traceparent_the_otel_trace_id_is_groundgates(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    resp = chat(gateway, "gpt", "hello", headers={"traceparent": "00-not-a-valid-header-01"})
    trace_id = resp.headers["x-groundgate-trace-id"]
    root = root_of(spans_of(receiver, trace_id, least=4))
    assert root.trace_id == trace_id and root.parent_span_id == ""


def test_streamed_request_records_time_to_first_chunk(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    fake_upstream.script(Behavior(content="one two three four", stream_chunks=4))
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        json={"model": "gpt", "messages": [{"role": "user", "content": "count"}], "stream": True},
        timeout=30,
    ) as resp:
        assert resp.status_code == 200
        trace_id = resp.headers["x-groundgate-trace-id"]
        body = b"".join(resp.iter_bytes())
    assert b"[DONE]" in body
    root = root_of(spans_of(receiver, trace_id, least=4))
    assert root.attributes["gen_ai.request.stream"] is True
    ttft = root.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft <= (root.end_ns - root.start_ns) / 1e9
    assert root.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert receiver.wait_for(
        lambda rx: any(
            p.attributes["gen_ai.request.model"] == "gpt"
            for p in rx.metric_points("gen_ai.client.operation.time_to_first_chunk")
        )
    )


def test_cache_hit_has_a_lookup_span_and_no_upstream_attempt(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    first = chat(gateway, "cached", "What is the cached answer?", temperature=0)
    second = chat(gateway, "cached", "What is the cached answer?", temperature=0)
    assert second.headers["x-groundgate-cache"] == "exact"
    spans = spans_of(receiver, second.headers["x-groundgate-trace-id"], least=2)
    root = root_of(spans)
    assert root.attributes["groundgate.source"] == "cache"
    assert root.attributes["groundgate.cache.status"] == "exact"
    assert named(spans, "cache_lookup").parent_span_id == root.span_id
    assert not [s for s in spans if s.kind == CLIENT]  # nothing went upstream
    first_spans = spans_of(receiver, first.headers["x-groundgate-trace-id"], least=4)
    assert [s for s in first_spans if s.kind == CLIENT]


def test_grounded_request_exports_no_text_unless_the_app_opted_in(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    marker = "zebra-marker-question"
    closed = chat(gateway, "desk", f"{marker} holds {CLIENT_SECRET} for you")
    assert closed.status_code == 200, closed.text
    spans = spans_of(receiver, closed.headers["x-groundgate-trace-id"], least=5)
    root = root_of(spans)
    assert root.name == "chat desk" and root.attributes["groundgate.app"] == "desk"
    assert {"retrieve", "prompt", "generate"} <= {s.name for s in spans}
    assert "gen_ai.input.messages" not in root.attributes
    exported = orjson.dumps([[s.attributes, s.name, s.status_message] for s in spans]).decode()
    assert marker not in exported and CLIENT_SECRET not in exported

    fake_upstream.script(Behavior(content=f"The answer mentions {UPSTREAM_KEY}."))
    opened = chat(gateway, "open-desk", f"{marker} holds {CLIENT_SECRET} for you")
    assert opened.status_code == 200, opened.text
    spans = spans_of(receiver, opened.headers["x-groundgate-trace-id"], least=5)
    attrs = root_of(spans).attributes
    inputs = orjson.loads(attrs["gen_ai.input.messages"])
    outputs = orjson.loads(attrs["gen_ai.output.messages"])
    assert any(marker in part.get("content", "") for m in inputs for part in m["parts"])
    assert outputs[0]["role"] == "assistant" and outputs[0]["finish_reason"] == "stop"
    # Opted in or not, secrets never leave: the client's key in the prompt, the gateway's
    # upstream key echoed in the answer, the Authorization header.
    everything = orjson.dumps([[s.attributes, s.resource] for s in receiver.spans()]).decode()
    assert CLIENT_SECRET not in everything and UPSTREAM_KEY not in everything
    assert "[REDACTED]" in attrs["gen_ai.input.messages"]
    assert "[REDACTED]" in attrs["gen_ai.output.messages"]


def test_failing_request_marks_the_root_and_each_attempt_as_errors(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    fake_upstream.set_default(Behavior(status=500, error_message="upstream exploded"))
    resp = chat(gateway, "gpt", "this will fail")
    assert resp.status_code >= 500
    spans = spans_of(receiver, resp.headers["x-groundgate-trace-id"], least=4)
    root = root_of(spans)
    assert root.status_code == ERROR and root.attributes["error.type"]
    assert root.attributes["http.response.status_code"] == resp.status_code
    attempts = [s for s in spans if s.kind == CLIENT]
    assert len(attempts) >= 2  # retried
    for attempt in attempts:
        assert attempt.status_code == ERROR and attempt.attributes["error.type"] == "500"
    assert [a.attributes["groundgate.attempt.try"] for a in attempts] == list(
        range(1, len(attempts) + 1)
    )
    error_type = root.attributes["error.type"]
    assert receiver.wait_for(
        lambda rx: any(
            p.attributes.get("error.type") == error_type
            for p in rx.metric_points("gen_ai.client.operation.duration")
        )
    )


def last_points(receiver: OtlpReceiver, name: str, model: str) -> list[MetricPoint]:
    """The latest point of each series of ``name`` for ``model`` (cumulative totals)."""
    latest: dict[str, MetricPoint] = {}
    for point in receiver.metric_points(name):
        if point.attributes.get("gen_ai.request.model") == model:
            latest[orjson.dumps(point.attributes, option=orjson.OPT_SORT_KEYS).decode()] = point
    return list(latest.values())


def test_genai_metrics_count_what_happened(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, receiver: OtlpReceiver
) -> None:
    fake_upstream.set_default(Behavior(prompt_tokens=9, completion_tokens=2))
    for i in range(3):
        assert chat(gateway, "metered", f"question {i}").status_code == 200

    def settled(rx: OtlpReceiver) -> bool:
        points = last_points(rx, "gen_ai.client.operation.duration", "metered")
        return sum(p.count for p in points) == 3

    assert receiver.wait_for(settled)
    (duration,) = last_points(receiver, "gen_ai.client.operation.duration", "metered")
    assert duration.unit == "s" and duration.kind == "histogram"
    assert duration.explicit_bounds[:3] == [0.01, 0.02, 0.04]
    assert duration.attributes["gen_ai.response.model"] == "gpt-4o-mini"
    tokens = {
        p.attributes["gen_ai.token.type"]: p
        for p in last_points(receiver, "gen_ai.client.token.usage", "metered")
    }
    assert tokens["input"].count == 3 and tokens["input"].sum == 27
    assert tokens["output"].count == 3 and tokens["output"].sum == 6
    assert tokens["input"].unit == "{token}"


def test_standard_environment_alone_exports_over_grpc_with_the_baseline_conventions(
    fake_upstream_server: FakeUpstream,
    fake_upstream: FakeUpstream,
    receiver: OtlpReceiver,
    tmp_path: Path,
) -> None:
    process = start_gateway(
        BASE.format(fake=fake_upstream_server.url),
        tmp_path,
        env={
            "GG_OTEL_UPSTREAM_KEY": UPSTREAM_KEY,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.grpc_url,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_SERVICE_NAME": "gg-by-env",
            "OTEL_METRIC_EXPORT_INTERVAL": "300",
            "OTEL_SEMCONV_STABILITY_OPT_IN": "",
        },
    )
    try:
        with httpx.stream(
            "POST",
            f"{process.url}/v1/chat/completions",
            json={"model": "gpt", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            timeout=30,
        ) as resp:
            trace_id = resp.headers["x-groundgate-trace-id"]
            b"".join(resp.iter_bytes())
        spans = spans_of(receiver, trace_id, least=4)
        root = root_of(spans)
        assert {s.transport for s in spans} == {"grpc"}
        assert root.resource["service.name"] == "gg-by-env"
        # v1.36.0: gen_ai.system, no streaming attributes, that version's schema.
        assert root.attributes["gen_ai.system"] == "openai"
        assert "gen_ai.provider.name" not in root.attributes
        assert "gen_ai.request.stream" not in root.attributes
        assert root.schema_url == "https://opentelemetry.io/schemas/1.36.0"
        assert receiver.wait_for(
            lambda rx: any(
                p.attributes.get("gen_ai.system") == "openai"
                for p in rx.metric_points("gen_ai.server.time_to_first_token")
            )
        )
    finally:
        process.stop()


def test_a_stalled_collector_slows_no_request_and_drops_are_counted(
    fake_upstream_server: FakeUpstream, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    with StalledCollector() as stalled:
        config = BASE.format(fake=fake_upstream_server.url) + (
            f'[otel]\nendpoint = "{stalled.url}"\nqueue_size = 16\nbatch_size = 8\n'
            "schedule_delay_ms = 10\nexport_timeout_s = 60\nmetrics_interval_s = 0.2\n"
        )
        process = start_gateway(config, tmp_path, env={"GG_OTEL_UPSTREAM_KEY": UPSTREAM_KEY})
        try:
            slowest = 0.0
            with httpx.Client(timeout=30) as client:
                for i in range(40):
                    started = time.monotonic()
                    resp = client.post(
                        f"{process.url}/v1/chat/completions",
                        json={"model": "gpt", "messages": [{"role": "user", "content": f"{i}"}]},
                    )
                    slowest = max(slowest, time.monotonic() - started)
                    assert resp.status_code == 200
                ready = client.get(f"{process.url}/readyz").json()
                metrics = client.get(f"{process.url}/metrics").text
            # Generous: an answer from the fake takes milliseconds; an export waits 60 s.
            assert slowest < 5.0
            assert stalled.accepted >= 1  # the exporter did try the collector
            spans = ready["otel"]["spans"]
            assert spans["dropped"] > 0 and spans["exported"] == 0
            assert spans["queued"] <= 16
            assert (
                f'groundgate_otel_spans_total{{outcome="dropped"}} {float(spans["dropped"])}'
                in (metrics)
            )
            # The requests whose spans were dropped, where the alert rule watches drops.
            assert 'groundgate_traces_dropped_total{sink="otlp"}' in metrics
        finally:
            started = time.monotonic()
            process.stop()
            stopping = time.monotonic() - started
        # Shutdown waits a few seconds for the last export, not the collector's minute.
        assert stopping < 14.0
        assert "Application shutdown complete" in process.log_text()
