"""Tiers end to end through the openai SDK, against two fake upstream models of different price
(``mini`` and ``big``, one fake server): the rules router sending a request to the cheap or the
flagship tier and saying which rule fired; a client pinning a tier by header or ``model@tier``,
refused for a tier that does not exist, a target that does not allow it, or a key that may not
use the tier's model; the cascade escalating a bad cheap answer and keeping a good one, whole
and streamed, billing both calls. The decision shows in ``x-groundgate-route``,
``groundgate.route``, the trace and the metrics.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from groundgate.routing.learned import shipped_router
from groundgate.routing.verifier import shipped_verifier
from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
CONFIG = """
[store]
path = "{workdir}/groundgate.db"
[traces]
flush_interval_ms = 20
[reliability]
max_attempts = 1
breaker_failures = 100000
breaker_min_calls = 100000
[providers.up]
type = "openai"
base_url = "{fake}/v1"

[models.mini]
deployments = ["up:mini-model"]
[models.big]
deployments = ["up:big-model"]

# A router model: no deployments of its own.
[models.auto.route]
tiers = {{ cheap = "mini", flagship = "big" }}
router = "rules"
rules = {{ max_cheap_tokens = 60, flagship_keywords = ["prove"] }}

[models.learned.route]
tiers = {{ cheap = "mini", flagship = "big" }}
router = "learned"
[models.casc.route]
tiers = {{ cheap = "mini", flagship = "big" }}
router = "cascade"

[models.cached]
cache = {{ exact = true }}
[models.cached.route]
tiers = {{ cheap = "mini", flagship = "big" }}

[models.fixed.route]
tiers = {{ cheap = "mini", flagship = "big" }}
pin = false

[knowledge_bases.notes]
mode = "keyword"
[apps.desk]
knowledge_base = "notes"
cache = {{ exact = false, semantic = false }}
[apps.desk.route]
tiers = {{ cheap = "mini", flagship = "big" }}

# USD per token: mini 0.1 in / 0.2 out, big 1 in / 2 out.
[prices."up:mini-model"]
input_per_mtok = 100000.0
output_per_mtok = 200000.0
[prices."up:big-model"]
input_per_mtok = 1000000.0
output_per_mtok = 2000000.0
"""
SHORT = [{"role": "user", "content": "What is two plus two?"}]
GOOD, BAD = "Four.", ""


@pytest.fixture(scope="module")
def gateway(
    fake_upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("routing")
    config = CONFIG.format(fake=fake_upstream_server.url, workdir=workdir)
    process = start_gateway(config, workdir, env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY})
    try:
        yield process
    finally:
        process.stop()


def client(gateway: GatewayProcess, key: str = ADMIN_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=20)


def admin(gateway: GatewayProcess) -> httpx.Client:
    return httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_KEY}"})


def upstream_models(fake: FakeUpstream) -> list[str]:
    return [r.json["model"] for r in fake.requests() if r.path.endswith("/chat/completions")]


def chat(gateway: GatewayProcess, **kwargs: Any) -> tuple[dict[str, Any], httpx.Headers]:
    """A whole answer through the SDK: the body (with ``groundgate``) and the headers."""
    raw = client(gateway).chat.completions.with_raw_response.create(**kwargs)
    body: dict[str, Any] = raw.parse().model_dump()
    return body, raw.headers


def metric(gateway: GatewayProcess, name: str, **labels: str) -> float:
    with admin(gateway) as http:
        text = http.get("/metrics").text
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match and want <= set(match.group(1).split(",")):
            return float(match.group(2))
    return 0.0


# -- the rules router ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("messages", "extra", "tier", "reason"),
    [
        (SHORT, {}, "cheap", "no rule fired"),
        ([{"role": "user", "content": "Please prove that 2+2=4."}], {}, "flagship",
         "flagship_keywords: prove"),
        ([{"role": "user", "content": "word " * 300}], {}, "flagship", "max_cheap_tokens"),
        (SHORT, {"tools": [{"type": "function", "function": {"name": "add", "parameters": {
            "type": "object", "properties": {}}}}]}, "flagship", "tools"),
    ],
    ids=["short", "keyword", "long", "tools"],
)  # fmt: skip
def test_the_rules_router_picks_the_tier_and_says_which_rule_fired(
    gateway: GatewayProcess,
    fake_upstream: FakeUpstream,
    messages: list[dict[str, Any]],
    extra: dict[str, Any],
    tier: str,
    reason: str,
) -> None:
    before = metric(gateway, "groundgate_route_decisions_total", target="auto", tier=tier)
    body, headers = chat(gateway, model="auto", messages=messages, **extra)
    model = {"cheap": "mini", "flagship": "big"}[tier]
    assert upstream_models(fake_upstream) == [f"{model}-model"]
    assert headers["x-groundgate-route"] == f"{tier}; router=rules"
    assert headers["x-groundgate-model"] == f"up:{model}-model"
    route = body["groundgate"]["route"]
    assert (route["tier"], route["model"], route["router"]) == (tier, model, "rules")
    assert route["reason"].startswith(reason)
    # Priced on the flagship the answer costs ten times as much: the cheap tier saves 90%.
    if tier == "cheap":
        assert route["saved_usd"] == pytest.approx(9 * route["estimated_usd"])
    else:
        assert route["saved_usd"] == 0
    trace = wait_for_trace_as_admin(gateway, headers["x-groundgate-trace-id"])
    assert trace["attrs"]["route"] == route
    after = metric(gateway, "groundgate_route_decisions_total", target="auto", tier=tier)
    assert after == before + 1


def wait_for_trace_as_admin(gateway: GatewayProcess, trace_id: str) -> dict[str, Any]:
    """The stored trace (tests/servers.py's wait_for_trace, with this gateway's admin key)."""
    with admin(gateway) as http:
        for _ in range(100):
            resp = http.get(f"/v1/traces/{trace_id}")
            if resp.status_code == 200:
                trace: dict[str, Any] = resp.json()
                return trace
            time.sleep(0.05)
    raise AssertionError(f"trace {trace_id} never recorded")


# -- pinning ---------------------------------------------------------------------------------


# The shipped learned router's P(cheap tier as good as the strong one), threshold 0.888:
# 0.999 and 0.722.
EASY = "Say hello."
HARD = (
    "Statement 1 | Every bounded sequence of real numbers has a convergent subsequence. "
    "Statement 2 | Every continuous function on a closed interval is uniformly continuous.\n"
    "A. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer:"
)


@pytest.mark.parametrize(("question", "tier"), [(EASY, "cheap"), (HARD, "flagship")])
def test_the_learned_router_sends_what_the_cheap_tier_may_get_wrong_up(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, question: str, tier: str
) -> None:
    body, headers = chat(gateway, model="learned", messages=[{"role": "user", "content": question}])
    model = {"cheap": "mini", "flagship": "big"}[tier]
    assert upstream_models(fake_upstream) == [f"{model}-model"]
    route = body["groundgate"]["route"]
    assert (route["tier"], route["router"]) == (tier, "learned")
    threshold = shipped_router().threshold
    assert (route["score"] >= threshold) is (tier == "cheap")
    assert headers["x-groundgate-route"].startswith(f"{tier}; router=learned; score=")


def test_a_client_pins_a_tier_by_header_or_model_suffix(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    body, headers = chat(
        gateway, model="auto", messages=SHORT, extra_headers={"x-groundgate-tier": "flagship"}
    )
    assert headers["x-groundgate-route"] == "flagship; router=pinned"
    assert body["model"] == "auto"
    body, headers = chat(gateway, model="desk@flagship", messages=SHORT)
    assert body["groundgate"]["route"]["router"] == "pinned"
    assert body["groundgate"]["app"] == "desk"
    assert upstream_models(fake_upstream) == ["big-model", "big-model"]
    # /v1/ask takes the header too, and answers with the decision.
    with admin(gateway) as http:
        resp = http.post(
            "/v1/ask",
            json={"app": "desk", "question": "What is two plus two?"},
            headers={"x-groundgate-tier": "cheap"},
        )
    assert resp.status_code == 200, resp.text
    assert resp.json()["route"]["tier"] == "cheap"
    assert resp.headers["x-groundgate-route"] == "cheap; router=pinned"
    assert upstream_models(fake_upstream)[-1] == "mini-model"


def test_an_ask_naming_its_own_model_is_not_routed(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    with admin(gateway) as http:
        resp = http.post("/v1/ask", json={"app": "desk", "question": "Hi?", "model": "big"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["route"] is None and "x-groundgate-route" not in resp.headers
    assert upstream_models(fake_upstream) == ["big-model"]


def test_a_pin_is_refused_for_an_unknown_tier_or_where_pinning_is_off(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway, model="auto@mid", messages=SHORT)
    assert caught.value.code == "unknown_tier"
    assert "Tiers: cheap, flagship" in caught.value.message
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway, model="fixed", messages=SHORT, extra_headers={"x-groundgate-tier": "cheap"})
    assert caught.value.code == "pinning_disabled"
    with pytest.raises(openai.BadRequestError) as caught:
        chat(gateway, model="auto@cheap", messages=SHORT, extra_headers={"x-groundgate-tier": "x"})
    assert caught.value.code == "conflicting_tiers"
    assert upstream_models(fake_upstream) == []


def test_a_key_pins_only_tiers_whose_model_it_may_use(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    with admin(gateway) as http:
        made = [
            http.post("/v1/admin/keys", json={"name": "k", "scopes": ["chat"], "models": models})
            for models in (["auto"], ["auto", "big"])
        ]
    narrow, wide = (resp.json()["key"] for resp in made)
    # The grant of the router model covers the tiers its router picks ...
    chosen = client(gateway, narrow).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "prove it"}]
    )
    assert chosen.choices[0].message.content
    # ... but a pinned tier is the client's choice: its model needs a grant of its own.
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(gateway, narrow).chat.completions.create(model="auto@flagship", messages=SHORT)
    assert caught.value.code == "tier_not_allowed"
    assert "may not pin the tier 'flagship' of 'auto'" in caught.value.message
    pinned = client(gateway, wide).chat.completions.create(model="auto@flagship", messages=SHORT)
    assert pinned.choices[0].message.content
    assert upstream_models(fake_upstream) == ["big-model", "big-model"]


def test_a_tier_answers_from_its_own_cached_answers(
    gateway: GatewayProcess, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Behavior(content="from big"), Behavior(content="from mini"))
    for tier, answer, cache in [
        ("flagship", "from big", "miss"),
        ("cheap", "from mini", "miss"),  # not the flagship's answer, though the same request
        ("cheap", "from mini", "exact"),
    ]:
        body, headers = chat(gateway, model=f"cached@{tier}", messages=SHORT, temperature=0)
        assert body["choices"][0]["message"]["content"] == answer
        assert headers["x-groundgate-cache"] == cache
    assert upstream_models(fake_upstream) == ["big-model", "mini-model"]


# -- the cascade -----------------------------------------------------------------------------


def stream_answer(gateway: GatewayProcess, model: str) -> tuple[str, dict[str, Any], Any]:
    """A streamed answer through the SDK: its text, the ``groundgate`` tail, the usage."""
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=model, messages=SHORT, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last = chunks[-1].model_dump()
    return text, last["groundgate"], chunks[-1].usage


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_cascade_escalates_a_bad_cheap_answer_and_bills_both_calls(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, stream: bool
) -> None:
    fake_upstream.script(
        Behavior(content=BAD, prompt_tokens=10, completion_tokens=1),
        Behavior(content=GOOD, prompt_tokens=10, completion_tokens=5),
    )
    before = metric(gateway, "groundgate_route_escalations_total", target="casc", to="flagship")
    if stream:
        text, tail, usage = stream_answer(gateway, "casc")
    else:
        body, headers = chat(gateway, model="casc", messages=SHORT)
        text, tail, usage = body["choices"][0]["message"]["content"], body["groundgate"], None
        assert headers["x-groundgate-route"] == "flagship; router=cascade; score=0.000"
        usage = body["usage"]
    assert text == GOOD
    assert upstream_models(fake_upstream) == ["mini-model", "big-model"]
    prompt, completion = (
        (usage.prompt_tokens, usage.completion_tokens)
        if stream
        else (usage["prompt_tokens"], usage["completion_tokens"])
    )
    assert (prompt, completion) == (20, 6)
    # Each call at its own deployment's price: mini 10 * 0.1 + 1 * 0.2, big 10 * 1 + 5 * 2.
    assert tail["cost_usd"] == pytest.approx(1.2 + 20.0)
    assert tail["model"] == "up:big-model"
    route = tail["route"]
    assert (route["tier"], route["router"]) == ("flagship", "cascade")
    [step] = route["escalations"]
    assert (step["from"], step["to"], step["reason"]) == ("cheap", "flagship", "empty answer")
    assert step["cost_usd"] == pytest.approx(1.2)
    assert route["saved_usd"] == pytest.approx(-1.2)  # the cheap try was spent for nothing
    trace = wait_for_trace_as_admin(gateway, tail["trace_id"])
    assert trace["attrs"]["route"]["escalations"] == route["escalations"]
    assert [a["deployment"] for a in trace["attempts"]] == ["up:mini-model", "up:big-model"]
    assert "cascade" in [s["name"] for s in trace["spans"]]
    assert trace["cost_usd"] == pytest.approx(21.2)
    after = metric(gateway, "groundgate_route_escalations_total", target="casc", to="flagship")
    assert after == before + 1


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_cascade_keeps_a_good_cheap_answer(
    gateway: GatewayProcess, fake_upstream: FakeUpstream, stream: bool
) -> None:
    fake_upstream.script(Behavior(content=GOOD, prompt_tokens=10, completion_tokens=5))
    if stream:
        text, tail, _ = stream_answer(gateway, "casc")
    else:
        body, headers = chat(gateway, model="casc", messages=SHORT)
        text, tail = body["choices"][0]["message"]["content"], body["groundgate"]
        assert headers["x-groundgate-route"].startswith("cheap; router=cascade; score=")
    assert text == GOOD
    assert upstream_models(fake_upstream) == ["mini-model"]
    route = tail["route"]
    # The shipped verifier scores the answer; it passes its threshold, so it is kept.
    assert route["tier"] == "cheap" and route.get("escalations") is None
    assert shipped_verifier().threshold <= route["score"] < 1.0
    assert tail["cost_usd"] == pytest.approx(10 * 0.1 + 5 * 0.2)


def test_the_catalog_lists_a_router_model_with_its_tiers(gateway: GatewayProcess) -> None:
    listed = {m.id: m.model_dump() for m in client(gateway).models.list()}
    auto = listed["auto"]["groundgate"]
    assert auto["deployments"] == [] and auto["router"] == "rules"
    assert auto["tiers"] == {"cheap": "mini", "flagship": "big"}
    assert listed["desk"]["groundgate"]["tiers"] == {"cheap": "mini", "flagship": "big"}
