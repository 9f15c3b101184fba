"""A/B splits end to end: a real gateway, the openai SDK and the fake upstream. A model split
between two upstream models keeps each end user (or session) in one variant and spreads users
over both; an app's variant swaps its model and prompt; the variant is in the headers, the body,
the metrics and the traces, which ``groundgate report ab`` compares."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from groundgate.testing.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess, start_gateway, wait_for_trace

CONFIG = """
[store]
path = "{workdir}/groundgate.db"
[traces]
flush_interval_ms = 20
[providers.up]
type = "openai"
base_url = "{fake}/v1"
[models.small]
deployments = ["up:small-1"]
[models.big]
deployments = ["up:big-1"]
[prices."up:small-1"]
input_per_mtok = 1.0
output_per_mtok = 2.0
[prices."up:big-1"]
input_per_mtok = 10.0
output_per_mtok = 30.0

# A plain model split between its own deployment (the control) and another model.
[models.split]
deployments = ["up:small-1"]
[[models.split.variants]]
name = "control"
weight = 1
[[models.split.variants]]
name = "big"
weight = 1
model = "big"

# The same split, cached: each variant answers from its own cache entries.
[models.cached-split]
deployments = ["up:small-1"]
cache = {{ exact = true }}
[[models.cached-split.variants]]
name = "control"
weight = 1
[[models.cached-split.variants]]
name = "big"
weight = 1
model = "big"

# An app whose variant "b" generates with another model and another prompt version (the app's
# own prompt is the latest version, 2).
[prompts]
dir = "prompts"
[knowledge_bases.empty]
mode = "keyword"
[apps.helpdesk]
knowledge_base = "empty"
model = "small"
prompt = "helpdesk"
cache = {{ exact = false, semantic = false }}
[[apps.helpdesk.variants]]
name = "a"
weight = 1
[[apps.helpdesk.variants]]
name = "b"
weight = 1
model = "big"
prompt = "helpdesk@1"
"""
HELPDESK_PROMPT = """
[[versions]]
version = 1
instructions = "Answer from the sources, citing them like [1]."
[[versions]]
version = 2
instructions = "Answer briefly from the sources, citing them like [1]."
"""
UPSTREAM_MODEL = {"control": "small-1", "big": "big-1", "a": "small-1", "b": "big-1"}


@pytest.fixture(scope="module")
def split_gateway(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir = tmp_path_factory.mktemp("ab")
    text = CONFIG.format(workdir=workdir, fake=fake_upstream_server.url)
    (workdir / "prompts").mkdir()
    (workdir / "prompts" / "helpdesk.toml").write_text(HELPDESK_PROMPT, "utf-8")
    gateway = start_gateway(text, workdir)
    try:
        yield gateway
    finally:
        gateway.stop()


def chat(
    client: openai.OpenAI, model: str, user: str | None = None, session: str | None = None
) -> tuple[str, dict[str, Any], str]:
    """(the x-groundgate-variant header, the body's groundgate object, the trace id)."""
    extra: dict[str, Any] = {"user": user} if user is not None else {}
    headers = {"x-groundgate-session": session} if session is not None else {}
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "How do I reset my password?"}],
        extra_headers=headers,
        **extra,
    )
    body = json.loads(raw.text)
    return raw.headers["x-groundgate-variant"], body["groundgate"], body["groundgate"]["trace_id"]


def report(gateway: GatewayProcess, target: str, *options: str) -> subprocess.CompletedProcess[str]:
    return gateway.cli("report", "ab", "--target", target, *options)


def upstream_models(fake: FakeUpstream) -> list[str]:
    return [r.json["model"] for r in fake.requests() if r.path.endswith("/chat/completions")]


def test_a_user_sticks_to_a_variant_and_users_spread(
    split_gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    client = openai.OpenAI(base_url=split_gateway.url + "/v1", api_key="unused", max_retries=0)
    seen: list[str] = []
    first: dict[str, str] = {}
    for round_ in range(3):
        for i in range(12):
            user = f"user-{i}"
            variant, groundgate, _ = chat(client, "split", user=user)
            assert groundgate["variant"] == variant
            assert first.setdefault(user, variant) == variant, f"{user} moved in round {round_}"
            seen.append(variant)
    assert set(first.values()) == {"control", "big"}  # 12 users over two even variants
    # Each request generated with its variant's model, upstream.
    assert upstream_models(fake_upstream) == [UPSTREAM_MODEL[v] for v in seen]
    # A session header sticks the same way when the body names no user.
    by_session = {chat(client, "split", session="s-42")[0] for _ in range(4)}
    assert len(by_session) == 1
    # Without either, requests are assigned at random: 24 land in both variants.
    anonymous = [chat(client, "split") for _ in range(24)]
    assert {variant for variant, _, _ in anonymous} == {"control", "big"}

    every = seen + [*by_session] * 4 + [variant for variant, _, _ in anonymous]
    wait_for_trace(split_gateway.url, anonymous[-1][2])
    trace = wait_for_trace(split_gateway.url, anonymous[0][2])
    assert trace["attrs"]["variant"] == {"target": "split", "name": anonymous[0][0]} | (
        {"model": "big"} if anonymous[0][0] == "big" else {}
    )
    metrics = httpx.get(split_gateway.url + "/metrics").text
    for name in ("control", "big"):
        line = f'groundgate_variant_requests_total{{target="split",variant="{name}"}} '
        assert line + f"{every.count(name)}.0" in metrics

    result = report(split_gateway, "split", "--json", "--since", "1h")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["control"] == "control" and data["feedback"] == "no feedback recorded"
    control, big = data["variants"]
    assert (control["name"], big["name"]) == ("control", "big")
    assert (control["requests"], big["requests"]) == (every.count("control"), every.count("big"))
    # "big" costs more per request (its price is 10-15x), and the interval says so.
    difference = big["vs_control"]["cost_usd"]
    assert difference["value"] > 0 and difference["low"] > 0
    latency = big["metrics"]["latency_ms"]
    assert latency["low"] <= latency["value"] <= latency["high"]


def test_an_app_variant_swaps_model_and_prompt_and_the_report_shows_both(
    split_gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    client = openai.OpenAI(base_url=split_gateway.url + "/v1", api_key="unused", max_retries=0)
    variants = {}
    last = ""
    for i in range(16):
        variant, groundgate, last = chat(client, "helpdesk", user=f"customer-{i}")
        # Each answer names the version that produced it, never the bare name.
        assert groundgate["prompt"] == ("helpdesk@1" if variant == "b" else "helpdesk@2")
        variants[f"customer-{i}"] = variant
    assert set(variants.values()) == {"a", "b"}
    assert upstream_models(fake_upstream) == [UPSTREAM_MODEL[v] for v in variants.values()]
    # /v1/ask takes the end user too, and puts it in the same variant as its chats.
    for user in ("customer-0", "customer-1", "customer-2"):
        ask = {"app": "helpdesk", "question": "How do I reset my password?", "user": user}
        answer = httpx.post(split_gateway.url + "/v1/ask", json=ask, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json()["variant"] == variants[user]
        assert answer.headers["x-groundgate-variant"] == variants[user]
        last = answer.json()["trace_id"]
    wait_for_trace(split_gateway.url, last)

    result = report(split_gateway, "helpdesk", "--since", "1h")
    assert result.returncode == 0, result.stderr
    table = result.stdout
    assert "a (control)" in table and "b" in table and "no feedback recorded" in table
    requests_row = next(line for line in table.splitlines() if "requests" in line)
    count_a = list(variants.values())[:3].count("a") + list(variants.values()).count("a")
    count_b = 19 - count_a
    assert [int(cell) for cell in requests_row.split("│")[2:4]] == [count_a, count_b]
    assert "Δ" in table and "[" in table  # differences to the control, with their intervals


def test_a_cached_answer_is_served_only_within_its_variant(
    split_gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    body = {
        "model": "cached-split",
        "temperature": 0,
        "messages": [{"role": "user", "content": "What are your opening hours?"}],
    }

    def ask(user: str) -> tuple[str, str]:
        resp = httpx.post(
            split_gateway.url + "/v1/chat/completions", json={**body, "user": user}, timeout=30
        )
        assert resp.status_code == 200, resp.text
        return resp.headers["x-groundgate-variant"], resp.headers["x-groundgate-cache"]

    first, status = ask("user-0")
    assert status == "miss"
    for i in range(1, 40):
        variant, status = ask(f"user-{i}")
        if variant != first:
            break
        assert status == "exact"  # the same variant: the cached answer
    # The other variant's first request goes upstream, to its own model.
    assert variant != first and status == "miss"
    assert upstream_models(fake_upstream) == [UPSTREAM_MODEL[first], UPSTREAM_MODEL[variant]]
