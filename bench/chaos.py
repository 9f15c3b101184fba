"""Chaos: one model over two upstreams, the primary flaky, then down, then back, under load.

    python bench/chaos.py [--rps 200] [--flaky-s 30] [--outage-s 10] [--json OUT] [--strict]

Two fake upstreams ("primary", "secondary", 20 ms each) and a gateway whose model ``chat``
has deployments ``primary:gpt`` then ``secondary:gpt``. Open-loop load (sends on a fixed
clock, each request its own task, so a slow gateway cannot slow the offered load down) runs
through five phases: a short warm-up (not measured); "healthy" (both fakes fine: the
baseline p99); "flaky" (the primary answers 20% of calls with a 503, drawn from a seeded RNG
and fed to the fake as its request script); "outage" (the primary hangs every call until the
gateway's 1 s provider timeout cuts it off: without a breaker every request would pay that);
"recovery" (the primary is healthy again, and a half-open probe should close its breaker).

The gateway's ``/readyz`` is polled every 100 ms (25 ms while the primary's breaker is not
closed) for the breaker's state, and the primary fake's request counter is read right after
each poll. Reported: success rate and p50/p99 latency (of every request, whatever its
outcome, from its scheduled send time) overall and per phase; ``open_breaker_p99_ms`` over
requests scheduled while the primary's breaker was open or half-open; ``lost`` (no HTTP
response: connection errors) and ``hung`` (the client's 15 s timeout); ``dead_after_open``,
the requests the primary received between the first poll that saw its breaker open and the
last poll that saw it not closed (only half-open probes should get through), next to the
number of probes the breaker's re-openings imply.

Bars (PASS/FAIL; the exit code is 0 unless ``--strict``): every request answered with a 200
(the secondary is healthy throughout), open_breaker_p99_ms <= 2 x healthy_p99_ms, no request
lost, none hung.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Server, start_fake_upstream, start_gateway

PRIMARY, SECONDARY = "primary:gpt", "secondary:gpt"
LOST, HUNG = -1, -2  # status codes of requests that got no HTTP response

RELIABILITY = {
    "max_attempts": 2,
    "base_delay_ms": 10,
    "breaker_failures": 5,
    "breaker_failure_rate": 0.5,
    "breaker_min_calls": 20,
    "breaker_cooldown_s": 2,
}
PROVIDER_TIMEOUT_S = 1.0
REQUEST_TIMEOUT_S = 10.0

CONFIG = """
[server]
log_level = "warning"
request_timeout_s = {request_timeout}

[store]
path = "{{workdir}}/bench.db"

[providers.primary]
type = "openai"
base_url = "{primary}/v1"
timeout_s = {provider_timeout}
max_connections = 1024

[providers.secondary]
type = "openai"
base_url = "{secondary}/v1"
timeout_s = {provider_timeout}
max_connections = 1024

[models.chat]
deployments = ["{p}", "{s}"]

[reliability]
{reliability}
"""


@dataclass(slots=True)
class Sent:
    at: float  # scheduled send time (monotonic)
    lag: float  # actual send minus scheduled, seconds
    latency_ms: float  # from the scheduled time to the full answer (or the error)
    status: int  # HTTP status, or LOST / HUNG
    model: str  # x-groundgate-model: the deployment that answered
    source: str  # x-groundgate-source
    phase: str = ""


class Fake:
    """The HTTP control surface of one fake upstream subprocess."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session, self.url = session, url

    async def _post(self, path: str, payload: bytes) -> None:
        headers = {"content-type": "application/json"}
        async with self.session.post(self.url + path, data=payload, headers=headers) as resp:
            if resp.status != 200:
                raise RuntimeError(f"{self.url}{path}: {resp.status} {await resp.text()}")

    async def set_default(self, behavior: dict[str, Any]) -> None:
        await self._post("/__control/default", orjson.dumps(behavior))

    async def set_script(self, payload: bytes) -> None:
        await self._post("/__control/script", payload)

    async def received(self) -> int:
        async with self.session.get(self.url + "/__control/stats") as resp:
            return int((await resp.json())["received"])


@dataclass
class FlakyScript:
    """Feeds the primary a script of behaviours, ``rate`` of them 503s, refilled as used up.
    The fake pops one entry per request, so the failures land in arrival order."""

    fake: Fake
    rng: random.Random
    rate: float
    latency_ms: float
    size: int
    calls: int = 0  # script entries consumed (approximate at refills: a few ms of slack)
    failures: int = 0
    exhausted: bool = False
    _entries: list[bool] = field(default_factory=list)
    _base: int = 0

    async def refill(self) -> None:
        self._entries = [self.rng.random() < self.rate for _ in range(self.size)]
        ok = orjson.dumps({"latency_ms": self.latency_ms})
        bad = orjson.dumps({"latency_ms": self.latency_ms, "status": 503})
        payload = b"[" + b",".join(bad if e else ok for e in self._entries) + b"]"
        self._base = await self.fake.received()
        await self.fake.set_script(payload)

    async def account(self) -> int:
        used = await self.fake.received() - self._base
        self.exhausted |= used > len(self._entries)
        used = min(used, len(self._entries))
        self.calls += used
        self.failures += sum(self._entries[:used])
        self._entries = []
        return used

    async def feed(self) -> None:
        """Runs until cancelled; the caller then calls ``account`` once more."""
        await self.refill()
        while True:
            await asyncio.sleep(0.25)
            used = await self.fake.received() - self._base
            if used >= self.size // 2:
                await self.account()
                await self.refill()


@dataclass
class Episode:
    """The primary's breaker from the first poll that saw it open to the first that saw it
    closed; ``opens`` holds each distinct ``opened_at`` (one per probe that ended it)."""

    start: float
    received_first: int
    received_last: int
    opens: set[float]
    end: float | None = None


class Monitor:
    def __init__(self, session: aiohttp.ClientSession, gateway: str, primary: Fake) -> None:
        self.session, self.url, self.primary = session, gateway + "/readyz", primary
        self.phase = "warmup"
        self.transitions: list[dict[str, Any]] = []
        self.episodes: list[Episode] = []
        self.errors: list[str] = []
        self._last: dict[str, tuple[str, float | None]] = {}
        self._previous_poll = time.monotonic()

    @property
    def primary_open(self) -> bool:
        return bool(self.episodes) and self.episodes[-1].end is None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.poll()
            except (aiohttp.ClientError, TimeoutError, KeyError, ValueError) as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.025 if self.primary_open else 0.1)

    async def poll(self) -> None:
        async with self.session.get(self.url) as resp:
            data = await resp.json()
        polled = time.monotonic()
        received = await self.primary.received()
        for dep, info in sorted(data["deployments"].items()):
            breaker = info.get("breaker") or {}
            key = (breaker.get("state", "closed"), breaker.get("opened_at"))
            if dep == PRIMARY:  # every poll: an open episode's counter moves on
                self._primary(key[0], key[1], polled, received)
            if key == self._last.get(dep, ("closed", None)):
                continue
            self._last[dep] = key
            self.transitions.append(
                {
                    "t": polled,
                    "phase": self.phase,
                    "deployment": dep,
                    "state": key[0],
                    "opened_at": key[1],
                    "primary_received": received,
                }
            )
        self._previous_poll = polled

    def _primary(self, state: str, opened_at: float | None, polled: float, received: int) -> None:
        if state == "closed":
            if self.primary_open:
                self.episodes[-1].end = polled
            return
        if not self.primary_open:
            # opened_at is the gateway's time.monotonic(): one clock for the whole machine on
            # Linux. Use it when it is plausible, else the time of the poll that saw the change.
            exact = opened_at is not None and self._previous_poll - 0.05 <= opened_at <= polled
            start = opened_at if exact and opened_at is not None else polled
            self.episodes.append(Episode(start, received, received, set()))
        episode = self.episodes[-1]
        episode.received_last = received
        if opened_at is not None:
            episode.opens.add(opened_at)


async def load(
    session: aiohttp.ClientSession,
    url: str,
    rps: float,
    start: float,
    end: float,
    records: list[Sent],
    tasks: set[asyncio.Task[None]],
) -> None:
    """Open loop: request i is due at start + i / rps, whatever became of the earlier ones."""
    headers = {"content-type": "application/json"}

    async def one(i: int, at: float) -> None:
        body = orjson.dumps(
            {
                "model": "chat",
                # Unique per request, so that no cache can answer in the upstreams' place.
                "messages": [{"role": "user", "content": f"Chaos request {i}: say hello."}],
                "max_tokens": 16,
            }
        )
        sent = time.monotonic()
        status, model, source = LOST, "", ""
        try:
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                status = resp.status
                model = resp.headers.get("x-groundgate-model", "")
                source = resp.headers.get("x-groundgate-source", "")
        except TimeoutError:  # before ClientError: aiohttp's timeouts are both
            status = HUNG
        except (aiohttp.ClientError, OSError):
            status = LOST
        done = time.monotonic()
        records.append(Sent(at, sent - at, (done - at) * 1000, status, model, source))

    i = 0
    while (at := start + i / rps) < end:
        delay = at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, at))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1


class CpuMeter:
    """CPU used by this benchmark's processes and by everything else on the machine, per
    phase: other work on a 2-core box is what makes a p99 move from run to run."""

    def __init__(self, pids: list[int]) -> None:
        self.procs = [psutil.Process(pid) for pid in pids]
        self.laps: list[tuple[str, tuple[float, float, float]]] = []

    def lap(self, phase: str) -> None:
        """``phase`` starts now ("end" when the load is over)."""
        t = psutil.cpu_times()
        busy = t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)
        ours = sum(p.cpu_times().user + p.cpu_times().system for p in self.procs)
        self.laps.append((phase, (time.monotonic(), busy, ours)))

    def report(self) -> dict[str, Any]:
        cores = psutil.cpu_count() or 1

        def shares(a: tuple[float, ...], b: tuple[float, ...]) -> dict[str, float]:
            wall, busy, ours = (y - x for x, y in zip(a, b, strict=True))
            return {
                "benchmark": round(ours / (wall * cores), 3),
                "other": round(max(0.0, busy - ours) / (wall * cores), 3),
            }

        measured = self.laps[1:]  # the warm-up is not measured
        per_phase = {name: shares(a, b) for (name, a), (_, b) in pairwise(measured)}
        overall = shares(measured[0][1], measured[-1][1])
        return {
            "cpu_count": cores,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "benchmark_cpu_share": overall["benchmark"],
            "other_cpu_share": overall["other"],
            "cpu_share_by_phase": per_phase,
        }


async def run(
    args: argparse.Namespace,
    primary_url: str,
    secondary_url: str,
    gateway_url: str,
    pids: list[int],
) -> dict[str, Any]:
    plan = [
        ("warmup", args.warmup_s),
        ("healthy", args.healthy_s),
        ("flaky", args.flaky_s),
        ("outage", args.outage_s),
        ("recovery", args.recovery_s),
    ]
    connector = aiohttp.TCPConnector(limit=4096)
    load_session = aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=args.client_timeout_s)
    )
    control = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
    async with load_session, control:
        primary, secondary = Fake(control, primary_url), Fake(control, secondary_url)
        healthy = {"latency_ms": args.latency_ms}
        for fake in (primary, secondary):
            await fake.set_default(healthy)
        flaky = FlakyScript(
            primary,
            random.Random(args.seed),
            args.fail_rate,
            args.latency_ms,
            size=max(1000, int(args.rps * 1.25 * 10)),  # ~10 s of primary calls, retries too
        )
        monitor = Monitor(control, gateway_url, primary)
        stop = asyncio.Event()
        monitor_task = asyncio.create_task(monitor.run(stop))
        records: list[Sent] = []
        tasks: set[asyncio.Task[None]] = set()
        t0 = time.monotonic() + 0.2
        bounds, t = [], t0
        for name, duration in plan:
            bounds.append((name, t, t + duration))
            t += duration
        url = gateway_url + "/v1/chat/completions"
        meter = CpuMeter(pids)
        load_task = asyncio.create_task(load(load_session, url, args.rps, t0, t, records, tasks))
        feeder: asyncio.Task[None] | None = None
        started: dict[str, float] = {}
        for name, begin, _ in bounds:
            await asyncio.sleep(max(0.0, begin - time.monotonic()))
            monitor.phase = name
            started[name] = time.monotonic()
            meter.lap(name)
            if name == "flaky":
                feeder = asyncio.create_task(flaky.feed())
            elif name == "outage":
                assert feeder is not None
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
                await primary.set_default({"hang": True})
                await flaky.account()
                await primary.set_script(b"[]")
            elif name == "recovery":
                await primary.set_default(healthy)
        await load_task
        meter.lap("end")
        if tasks:  # every request ends by the client timeout at the latest
            await asyncio.wait(set(tasks), timeout=args.client_timeout_s + 5)
        await asyncio.sleep(0.3)
        stop.set()
        await monitor_task
        received = {"primary": await primary.received(), "secondary": await secondary.received()}
    for record in records:
        record.phase = next(n for n, b, e in reversed(bounds) if record.at >= b)
    result = report(args, records, bounds, started, monitor, flaky, received, t0)
    result["machine"] = meter.report()
    return result


def summarize(records: list[Sent]) -> dict[str, Any]:
    latencies = np.array([r.latency_ms for r in records]) if records else np.array([np.nan])
    ok = sum(r.status == 200 for r in records)
    statuses = Counter(
        "lost" if r.status == LOST else "hung" if r.status == HUNG else str(r.status)
        for r in records
    )
    return {
        "requests": len(records),
        "ok": ok,
        "success_rate": round(ok / len(records), 6) if records else None,
        "p50_ms": round(float(np.percentile(latencies, 50)), 2),
        "p99_ms": round(float(np.percentile(latencies, 99)), 2),
        "max_ms": round(float(np.max(latencies)), 2),
        # Requests that waited out at least one provider timeout (a hung upstream call).
        "over_provider_timeout": int(np.sum(latencies >= PROVIDER_TIMEOUT_S * 1000)),
        "statuses": dict(sorted(statuses.items())),
        "answered_by": dict(sorted(Counter(r.model or "-" for r in records).items())),
        "sources": dict(sorted(Counter(r.source or "-" for r in records).items())),
    }


def report(
    args: argparse.Namespace,
    records: list[Sent],
    bounds: list[tuple[str, float, float]],
    started: dict[str, float],
    monitor: Monitor,
    flaky: FlakyScript,
    received: dict[str, int],
    t0: float,
) -> dict[str, Any]:
    measured = [r for r in records if r.phase != "warmup"]
    overall = summarize(measured)
    phases = {}
    for name, begin, end in bounds[1:]:
        phase = summarize([r for r in measured if r.phase == name])
        phases[name] = {"start_s": round(begin - t0, 3), "duration_s": round(end - begin, 3)}
        phases[name] |= phase
    end_of_run = bounds[-1][2]
    windows = [(e.start, e.end if e.end is not None else end_of_run) for e in monitor.episodes]
    in_open = [r for r in measured if any(b <= r.at < e for b, e in windows)]
    open_summary = summarize(in_open)
    episodes = [
        {
            "opened_s": round(e.start - t0, 3),
            "closed_s": round(e.end - t0, 3) if e.end is not None else None,
            "opened_in": next(n for n, b, _ in reversed(bounds) if e.start >= b),
            "opens": len(e.opens),
            "primary_received_while_open": e.received_last - e.received_first,
        }
        for e in monitor.episodes
    ]
    recovery_at = started["recovery"]
    closed_after = [e.end - recovery_at for e in monitor.episodes if e.end and e.end > recovery_at]
    back = [r.at for r in records if r.at >= recovery_at and r.model == PRIMARY]
    lags = np.array([r.lag * 1000 for r in records]) if records else np.array([0.0])
    statuses = overall["statuses"]
    healthy_p99 = phases["healthy"]["p99_ms"]
    open_p99 = open_summary["p99_ms"] if in_open else None
    result: dict[str, Any] = {
        "benchmark": "chaos",
        "success_rate": overall["success_rate"],
        "p50_ms": overall["p50_ms"],
        "p99_ms": overall["p99_ms"],
        "healthy_p99_ms": healthy_p99,
        "open_breaker_p99_ms": open_p99,
        "lost": statuses.get("lost", 0),
        "hung": statuses.get("hung", 0),
        "dead_after_open": sum(e["primary_received_while_open"] for e in episodes),
        "half_open_probes": sum(e["opens"] for e in episodes),
        "requests": overall["requests"],
        "overall": overall,
        "phases": phases,
        "open_breaker": open_summary,
        "breaker_episodes": episodes,
        "recovery": {
            "breaker_closed_after_s": round(closed_after[0], 3) if closed_after else None,
            "first_primary_answer_after_s": round(back[0] - recovery_at, 3) if back else None,
        },
        "transitions": [
            {
                **{k: v for k, v in tr.items() if k not in ("t", "opened_at")},
                "t_s": round(tr["t"] - t0, 3),
                "opened_at_s": None if tr["opened_at"] is None else round(tr["opened_at"] - t0, 3),
            }
            for tr in monitor.transitions
        ],
        "injected": {
            "flaky_script_calls": flaky.calls,
            "flaky_script_503s": flaky.failures,
            "flaky_fail_rate": round(flaky.failures / flaky.calls, 4) if flaky.calls else None,
            "script_ran_out": flaky.exhausted,
        },
        "upstream_received": received,
        "scheduler_lag_ms": {
            "p99": round(float(np.percentile(lags, 99)), 2),
            "max": round(float(np.max(lags)), 2),
        },
        "monitor_errors": monitor.errors[:5],
        "config": {
            "rps": args.rps,
            "warmup_s": args.warmup_s,
            "phases_s": {name: round(e - b, 3) for name, b, e in bounds[1:]},
            "upstream_latency_ms": args.latency_ms,
            "fail_rate": args.fail_rate,
            "seed": args.seed,
            "client_timeout_s": args.client_timeout_s,
            "provider_timeout_s": PROVIDER_TIMEOUT_S,
            "request_timeout_s": REQUEST_TIMEOUT_S,
            "deployments": [PRIMARY, SECONDARY],
            "reliability": RELIABILITY,
            "python": sys.version.split()[0],
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    result["bars"] = {
        "all_answered": result["success_rate"] == 1.0,
        "open_breaker_p99_le_2x_healthy": open_p99 is not None and open_p99 <= 2 * healthy_p99,
        "no_lost": result["lost"] == 0,
        "no_hung": result["hung"] == 0,
    }
    return result


def print_report(r: dict[str, Any]) -> None:
    cols = ["phase", "requests", "ok %", "p50 ms", "p99 ms", "max ms", ">=1s", "primary", "second"]
    print(f"{cols[0]:<14}" + "".join(f"{c:>10}" for c in cols[1:]))
    rows = [*r["phases"].items(), ("open breaker", r["open_breaker"]), ("all", r["overall"])]
    for name, s in rows:
        rate = f"{100 * s['success_rate']:.3f}" if s["success_rate"] is not None else "-"
        by = s["answered_by"]
        values = [s["requests"], rate, s["p50_ms"], s["p99_ms"], s["max_ms"]]
        values.append(s["over_provider_timeout"])
        values += [by.get(PRIMARY, 0), by.get(SECONDARY, 0)]
        print(f"{name:<14}" + "".join(f"{v:>10}" for v in values))
    print(f"statuses: {r['overall']['statuses']}   lost {r['lost']}   hung {r['hung']}")
    inj = r["injected"]
    print(
        f"flaky phase: {inj['flaky_script_503s']} of {inj['flaky_script_calls']} primary calls "
        f"scripted as 503 ({inj['flaky_fail_rate']})"
    )
    print(
        f"dead_after_open {r['dead_after_open']} (half-open probes implied: "
        f"{r['half_open_probes']})   recovery: breaker closed "
        f"{r['recovery']['breaker_closed_after_s']} s, primary answering again "
        f"{r['recovery']['first_primary_answer_after_s']} s after the primary came back"
    )
    print("primary breaker transitions:")
    for tr in r["transitions"]:
        if tr["deployment"] == PRIMARY:
            print(
                f"  t={tr['t_s']:>8.3f} s  {tr['phase']:<9} -> {tr['state']:<9} "
                f"opened_at={tr['opened_at_s']}  primary received={tr['primary_received']}"
            )
    others = [tr for tr in r["transitions"] if tr["deployment"] != PRIMARY]
    if others:
        print(f"other breakers changed state {len(others)} times: {others[:3]}")
    m = r["machine"]
    print(
        f"CPU over the load ({m['cpu_count']} cores): this benchmark "
        f"{100 * m['benchmark_cpu_share']:.0f}%, other work {100 * m['other_cpu_share']:.0f}%"
        f", client scheduling lag p99 {r['scheduler_lag_ms']['p99']} ms"
    )
    busy = {k: v["other"] for k, v in m["cpu_share_by_phase"].items() if v["other"] > 0.1}
    if busy:
        shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in busy.items())
        print(f"  other work was running during: {shares} (latency figures there are noisy)")
    healthy = r["healthy_p99_ms"]
    checks = [
        ("all_answered", f"success rate {r['success_rate']} == 1.0"),
        (
            "open_breaker_p99_le_2x_healthy",
            f"open-breaker p99 {r['open_breaker_p99_ms']} ms <= 2 x healthy p99 {healthy} ms",
        ),
        ("no_lost", f"lost {r['lost']} == 0"),
        ("no_hung", f"hung {r['hung']} == 0"),
    ]
    for key, text in checks:
        print(f"{'PASS' if r['bars'][key] else 'FAIL'}  {text}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rps", type=float, default=200.0, help="offered load, requests/s")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="not measured")
    parser.add_argument("--healthy-s", type=float, default=5.0)
    parser.add_argument("--flaky-s", type=float, default=30.0)
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--recovery-s", type=float, default=10.0)
    parser.add_argument("--fail-rate", type=float, default=0.2, help="primary 503s when flaky")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="each fake's latency")
    parser.add_argument("--client-timeout-s", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a bar fails")
    args = parser.parse_args()
    if args.rps <= 0 or not 0 <= args.fail_rate <= 1:
        parser.error("--rps must be > 0 and --fail-rate within [0, 1]")

    # SIGTERM unwinds like Ctrl-C, so the subprocesses below are always stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with tempfile.TemporaryDirectory(prefix="groundgate-chaos-") as workdir:
            result = chaos(args, Path(workdir))
    except KeyboardInterrupt:
        print("interrupted; upstreams and gateway stopped", file=sys.stderr)
        return 130
    print_report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if args.strict and not all(result["bars"].values()) else 0


def chaos(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Start the two fakes and the gateway, run the phases, and always stop all three."""
    servers: list[Server] = []
    try:
        servers.append(start_fake_upstream(args.latency_ms))
        servers.append(start_fake_upstream(args.latency_ms))
        primary, secondary = servers
        config = CONFIG.format(
            request_timeout=REQUEST_TIMEOUT_S,
            primary=primary.url,
            secondary=secondary.url,
            provider_timeout=PROVIDER_TIMEOUT_S,
            p=PRIMARY,
            s=SECONDARY,
            reliability="\n".join(f"{k} = {v}" for k, v in RELIABILITY.items()),
        )
        servers.append(start_gateway(config, workdir))
        pids = [os.getpid(), *(server.pid for server in servers)]
        coro = run(args, primary.url, secondary.url, servers[2].url, pids)
        try:
            import uvloop
        except ImportError:
            result = asyncio.run(coro)
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                result = runner.run(coro)
    finally:
        for server in reversed(servers):
            server.stop()
    return result


if __name__ == "__main__":
    raise SystemExit(main())
