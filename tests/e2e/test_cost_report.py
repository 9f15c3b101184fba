"""The cost ledger end to end: a seeded workload through a real gateway (a fake upstream that
reports fixed token usage, ``[prices]`` for its two models) of routed, cached, grounded, plain
and failing requests from two keys of one tenant and one key of another. ``groundgate report
cost`` must give exactly the numbers the responses and traces say happened, the same JSON on a
second run, the documented projection with and without what-ifs, and ``GET /v1/usage`` the
same breakdown, scoped to the caller."""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from groundgate.testing.fake_upstream import Behavior, FakeUpstream
from tests.servers import GatewayProcess, free_port, start_gateway

ADMIN_KEY = "adm-" + secrets.token_urlsafe(32)
PROMPT_TOKENS, COMPLETION_TOKENS = 100, 50
# USD per million tokens: (input, output).
PRICES = {"mini": (1.0, 2.0), "big": (10.0, 30.0)}  # models mini and big
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
[providers.dead]
type = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
timeout_s = 1

[models.mini]
deployments = ["up:mini-model"]
[models.big]
deployments = ["up:big-model"]
[models.down]
deployments = ["dead:gone"]
[models.auto.route]
tiers = {{ cheap = "mini", flagship = "big" }}
router = "rules"
rules = {{ flagship_keywords = ["prove"] }}
[models.cached]
deployments = ["up:mini-model"]
cache = {{ exact = true, semantic = false }}

[knowledge_bases.empty]
mode = "keyword"
[apps.desk]
knowledge_base = "empty"
model = "mini"
cache = {{ exact = false, semantic = false }}

[prices."up:mini-model"]
input_per_mtok = 1.0
output_per_mtok = 2.0
[prices."up:big-model"]
input_per_mtok = 10.0
output_per_mtok = 30.0

[cost]
deployment = "test"
[cost.deployments.test]
replicas = 2
usd_per_replica_month = 100.0
redis_usd_month = 25.0
postgres_usd_month = 50.0
requests_per_replica_month = 4000000
"""
FIXED = {100_000: (2, 275.0), 1_000_000: (2, 275.0), 10_000_000: (3, 375.0)}
# The seeded workload of tenant "default": (kind, how many).
MIX = {"cheap": 8, "strong": 4, "cached": 8, "app": 4, "plain": 3, "error": 3}
REQUEST = {
    "cheap": ("auto", "What is two plus two?"),
    "strong": ("auto", "Please prove that two plus two is four."),
    "app": ("desk", "How do I reset my password?"),
    "plain": ("mini", "Say hello."),
    "error": ("down", "Anyone there?"),
}
CACHED_QUESTIONS = ["What is the capital of France?", "What is the capital of Spain?"]


@dataclass
class Sent:
    """What the responses said happened, per request."""

    key: str
    kind: str
    status: int
    cost: float
    source: str | None
    tier: str | None
    trace_id: str


@dataclass
class Workload:
    gateway: GatewayProcess
    keys: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)

    def mine(self) -> list[Sent]:
        return [s for s in self.sent if s.key != "gamma"]


def run_workload(gateway: GatewayProcess, seed: int) -> Workload:
    work = Workload(gateway)
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    for name, tenant in (("alpha", None), ("beta", None), ("gamma", "globex")):
        body = {"name": name} | ({"tenant": tenant} if tenant else {})
        resp = httpx.post(gateway.url + "/v1/admin/keys", json=body, headers=admin)
        assert resp.status_code == 201, resp.text
        work.keys[name], work.ids[name] = resp.json()["key"], resp.json()["id"]
    rng = random.Random(seed)
    kinds = [kind for kind, n in MIX.items() for _ in range(n)]
    rng.shuffle(kinds)
    plan = [(rng.choice(["alpha", "beta"]), kind) for kind in kinds]
    plan += [("gamma", "cheap")] * 3
    cached = iter(rng.choice(CACHED_QUESTIONS) for _ in range(MIX["cached"]))
    for key, kind in plan:
        model, question = REQUEST.get(kind) or ("cached", next(cached))
        resp = httpx.post(
            gateway.url + "/v1/chat/completions",
            # Temperature 0: the cache keeps only answers that are not drawn at random.
            json={
                "model": model,
                "messages": [{"role": "user", "content": question}],
                "temperature": 0,
            },
            headers={"Authorization": f"Bearer {work.keys[key]}"},
            timeout=30,
        )
        route = resp.headers.get("x-groundgate-route")
        work.sent.append(
            Sent(
                key=key,
                kind=kind,
                status=resp.status_code,
                cost=float(resp.headers.get("x-groundgate-cost-usd") or 0.0),
                source=resp.headers.get("x-groundgate-source"),
                tier=route.split(";")[0] if route else None,
                trace_id=resp.headers["x-groundgate-trace-id"],
            )
        )
    return work


def stored_traces(work: Workload) -> dict[str, dict[str, Any]]:
    """Every request's stored trace, once the gateway has written them all."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    found: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 15
    for sent in work.sent:
        key = {"Authorization": f"Bearer {work.keys[sent.key]}"}
        while sent.trace_id not in found:
            for headers in (key, admin):
                resp = httpx.get(f"{work.gateway.url}/v1/traces/{sent.trace_id}", headers=headers)
                if resp.status_code == 200:
                    found[sent.trace_id] = resp.json()
                    break
            else:
                assert time.monotonic() < deadline, f"trace {sent.trace_id} never stored"
                time.sleep(0.05)
    return found


@pytest.fixture(scope="module")
def workload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workload]:
    usage = Behavior(prompt_tokens=PROMPT_TOKENS, completion_tokens=COMPLETION_TOKENS)
    with FakeUpstream(default=usage) as fake:
        workdir = tmp_path_factory.mktemp("cost")
        text = CONFIG.format(workdir=workdir, fake=fake.url, dead_port=free_port())
        gateway = start_gateway(text, workdir, env={"GROUNDGATE_ADMIN_KEY": ADMIN_KEY})
        try:
            work = run_workload(gateway, seed=16)
            work.traces = stored_traces(work)  # type: ignore[attr-defined]
            yield work
        finally:
            gateway.stop()


def run_report(
    work: Workload, *options: str, pythonpath: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = None
    if pythonpath is not None:
        env = {"PYTHONPATH": os.pathsep.join([pythonpath, os.environ.get("PYTHONPATH", "")])}
    return work.gateway.cli("report", "cost", *options, env=env)


def report(work: Workload, tmp: Path, *options: str) -> dict[str, Any]:
    out = tmp / f"report-{secrets.token_hex(4)}.json"
    result = run_report(work, "--json", str(out), *options)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Projection" in result.stdout  # the table is printed as well
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def usd(value: float) -> float:
    return round(value, 10) + 0.0


def answer_cost(model: str, output_tokens: float = COMPLETION_TOKENS) -> float:
    price_in, price_out = PRICES[model]
    return (PROMPT_TOKENS * price_in + output_tokens * price_out) / 1e6


def nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(round(p * len(ordered), 9))) - 1]


def test_the_workload_did_what_it_was_seeded_to(workload: Workload) -> None:
    mine = workload.mine()
    assert Counter(s.kind for s in mine) == Counter(MIX)
    sources = Counter((s.kind, s.source) for s in mine)
    assert sources[("cached", "cache")] == MIX["cached"] - 2  # each question's first is a miss
    assert {s.tier for s in mine if s.kind == "cheap"} == {"cheap"}
    assert {s.tier for s in mine if s.kind == "strong"} == {"flagship"}
    assert {s.status for s in mine if s.kind == "error"} == {503}  # no deployment up
    assert {s.status for s in mine if s.kind != "error"} == {200}
    assert {s.key for s in mine} == {"alpha", "beta"}
    # The fake upstream's fixed usage at [prices]: what every answer cost.
    assert {s.cost for s in mine if s.kind in ("cheap", "app", "plain")} == {answer_cost("mini")}
    assert {s.cost for s in mine if s.kind == "strong"} == {answer_cost("big")}


def test_the_report_gives_exactly_what_happened(workload: Workload, tmp_path: Path) -> None:
    data = report(workload, tmp_path, "--tenant", "default", "--since", "1d")
    mine, traces = workload.mine(), workload.traces  # type: ignore[attr-defined]
    hits = [s for s in mine if s.source == "cache"]
    errors = [s for s in mine if s.status >= 400]
    answers = [s for s in mine if s not in hits and s not in errors]
    costs = [s.cost for s in mine]
    o = data["observed"]
    assert o["window"]["tenant"] == "default"
    assert (o["requests"], o["errors"], o["error_rate"]) == (30, 3, 0.1)
    assert o["cost_usd"] == usd(sum(costs))
    assert o["cost_per_request_usd"] == {
        "mean": usd(sum(costs) / 30),
        "p50": usd(nearest_rank(costs, 0.5)),
        "p95": usd(nearest_rank(costs, 0.95)),
    }
    assert o["prompt_tokens_per_request"] == round(len(answers) * PROMPT_TOKENS / 30, 3)
    assert o["completion_tokens_per_request"] == round(len(answers) * COMPLETION_TOKENS / 30, 3)
    # A hit saves what its answer cost when the model generated it.
    assert o["cache"] == {
        "hits": len(hits),
        "hit_rate": round(len(hits) / 30, 6),
        "saved_usd": usd(len(hits) * answer_cost("mini")),
    }
    route_saved = sum(traces[s.trace_id]["attrs"]["route"].get("saved_usd", 0.0) for s in mine
                      if "route" in traces[s.trace_id]["attrs"])  # fmt: skip
    assert route_saved > 0  # the cheap tier saved against the flagship
    tiers = {t["tier"]: t for t in o["routes"]["tiers"]}
    assert set(tiers) == {None, "cheap", "flagship"}
    assert (tiers["cheap"]["requests"], tiers["flagship"]["requests"]) == (8, 4)
    assert tiers[None]["requests"] == len(answers) - 12
    assert (tiers["flagship"]["strong"], tiers["cheap"]["strong"]) == (True, False)
    assert tiers["flagship"]["cost_per_request_usd"] == usd(answer_cost("big"))
    assert o["routes"]["strong_share"] == round(4 / 12, 6)
    assert o["routes"]["saved_usd"] == usd(route_saved)
    assert tiers["flagship"]["route_saved_usd"] == 0.0
    by_key = {k["key_id"]: k for k in o["by_key_id"]}
    assert {k: v["requests"] for k, v in by_key.items()} == dict(
        Counter(workload.ids[s.key] for s in mine)
    )
    assert [m["model"] for m in o["by_model"]] == sorted({"auto", "cached", "desk", "mini", "down"})
    assert [(a["app"], a["requests"]) for a in o["by_app"]] == [(None, 26), ("desk", 4)]
    assert sum(d["requests"] for d in o["by_day"]) == 30

    # The projection at the observed rates: the window's spend per request, times the volume,
    # plus the deployment's fixed cost (a third replica past 8M requests a month).
    assert [p["requests_per_month"] for p in data["projections"]] == [
        100_000,
        1_000_000,
        10_000_000,
    ]
    for row in data["projections"]:
        volume = row["requests_per_month"]
        replicas, fixed = FIXED[volume]
        variable = volume * sum(costs) / 30
        assert row["replicas"] == replicas
        assert row["fixed_usd_per_month"] == fixed
        assert row["variable_usd_per_month"] == usd(variable)
        assert row["usd_per_month"] == usd(variable + fixed)
        assert row["cache_saved_usd_per_month"] == usd(
            volume * len(hits) / 30 * answer_cost("mini")
        )
        assert row["route_saved_usd_per_month"] == usd(volume * route_saved / 30)

    # Every tenant at once: the other tenant's requests are in, under their own name.
    everyone = report(workload, tmp_path, "--since", "1d")["observed"]
    assert everyone["requests"] == 33
    assert [(t["tenant"], t["requests"]) for t in everyone["by_tenant"]] == [
        ("default", 30),
        ("globex", 3),
    ]


def test_what_ifs_follow_the_documented_model(workload: Workload, tmp_path: Path) -> None:
    data = report(
        workload, tmp_path, "--tenant", "default", "--since", "1d",
        "--cache-hit-rate", "0.5", "--strong-share", "0.25", "--output-tokens", "200",
    )  # fmt: skip
    mine = workload.mine()
    answers = [s for s in mine if s.source != "cache" and s.status < 400]
    unrouted = len(answers) - 12
    # Half the requests hit the cache, a tenth fail (as observed), the rest are generated:
    # the unrouted answers keep their share, a quarter of the routed ones go to the flagship,
    # and every answer is 200 tokens long at its model's output price.
    routed_share = 12 / len(answers)
    per_answer = (
        unrouted / len(answers) * answer_cost("mini", 200)
        + routed_share * 0.75 * answer_cost("mini", 200)
        + routed_share * 0.25 * answer_cost("big", 200)
    )
    a = data["assumptions"]
    assert a["what_if"] == {"cache_hit_rate": 0.5, "strong_share": 0.25, "output_tokens": 200.0}
    assert (a["cache_hit_rate"], a["error_rate"], a["strong_share"]) == (0.5, 0.1, 0.25)
    assert a["output_tokens_per_answer"] == 200.0
    assert a["usd_per_generated_answer"] == usd(per_answer)
    assert a["deployment"]["name"] == "test"
    for row in data["projections"]:
        volume = row["requests_per_month"]
        variable = volume * 0.4 * per_answer
        assert row["variable_usd_per_month"] == usd(variable)
        assert row["usd_per_month"] == usd(variable + FIXED[volume][1])
        assert row["cache_saved_usd_per_month"] == usd(volume * 0.5 * answer_cost("mini"))


def test_two_runs_give_the_same_report_and_files(workload: Workload, tmp_path: Path) -> None:
    files = []
    for run in ("one", "two"):
        folder = tmp_path / run
        data = report(
            workload, tmp_path, "--tenant", "default", "--since", "1d",
            "--markdown", str(folder / "cost.md"), "--plot", str(folder / "cost.png"),
        )  # fmt: skip
        data["observed"].pop("window")  # the only timestamps
        files.append((data, folder))
    (first, one), (second, two) = files
    assert first == second
    markdown = (one / "cost.md").read_text()

    def timeless(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("| window |")]

    assert timeless(markdown) == timeless((two / "cost.md").read_text())
    assert (one / "cost.png").read_bytes() == (two / "cost.png").read_bytes()
    assert markdown.startswith("# Cost report")
    assert "| 10,000,000 |" in markdown and "![cost chart](cost.png)" in markdown
    assert (one / "cost.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_usage_gains_the_breakdown_scoped_to_the_caller(workload: Workload) -> None:
    mine = workload.mine()
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    body = httpx.get(workload.gateway.url + "/v1/usage", headers=admin).json()
    assert body["tenant"] == "default"
    totals = body["totals"]
    assert (totals["requests"], totals["errors"], totals["cache_hits"]) == (30, 3, 6)
    assert totals["cost_usd"] == usd(sum(s.cost for s in mine))
    assert totals["cache_saved_usd"] == usd(6 * answer_cost("mini"))
    assert sum(r["requests"] for r in body["data"]) == 30  # per model and key, as before
    assert set(body["data"][0]) == {
        "model", "key_id", "requests", "prompt_tokens", "completion_tokens", "cost_usd", "errors"
    }  # fmt: skip
    breakdown = body["breakdown"]
    assert set(breakdown) == {"by_day", "by_key_id", "by_app", "by_model", "by_tier"}
    tiers = {t["tier"]: t["requests"] for t in breakdown["by_tier"]}
    assert (tiers["cheap"], tiers["flagship"]) == (8, 4)
    keys = {k["key_id"]: k["cost_usd"] for k in breakdown["by_key_id"]}
    for name in ("alpha", "beta"):
        spent = sum(s.cost for s in mine if s.key == name)
        assert keys[workload.ids[name]] == usd(spent)
    assert workload.ids["gamma"] not in keys
    assert sum(r["requests"] for r in body["ledger"]) == 30
    assert {r["tenant"] for r in body["ledger"]} == {"default"}
    # A plain key of the other tenant sees its own requests only.
    gamma = {"Authorization": f"Bearer {workload.keys['gamma']}"}
    own = httpx.get(workload.gateway.url + "/v1/usage", headers=gamma).json()
    assert own["totals"]["requests"] == 3
    assert [k["key_id"] for k in own["breakdown"]["by_key_id"]] == [workload.ids["gamma"]]


def test_what_the_window_cannot_answer_is_refused_and_the_chart_optional(
    workload: Workload, tmp_path: Path
) -> None:
    unknown = run_report(workload, "--deployment", "k8s")
    assert unknown.returncode == 2 and "no 'k8s'" in unknown.stderr
    # The other tenant's traffic never reached the flagship: no strong answer to price.
    one_sided = run_report(workload, "--tenant", "globex", "--strong-share", "0.5")
    assert one_sided.returncode == 2
    assert "no answers from a strong tier" in one_sided.stderr
    # Without matplotlib the report is still written, without its chart.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "matplotlib.py").write_text("raise ImportError('matplotlib is not installed')\n")
    chart, markdown = tmp_path / "cost.png", tmp_path / "cost.md"
    plain = run_report(
        workload, "--markdown", str(markdown), "--plot", str(chart), pythonpath=str(shim)
    )
    assert plain.returncode == 0, plain.stderr
    assert "No chart: matplotlib is not installed" in plain.stderr
    assert not chart.exists()
    assert "![cost chart]" not in markdown.read_text()
