"""Gateway overhead: the same chat request sent straight to a fake upstream (50 ms latency)
and through Groundgate, at several concurrencies.

    python bench/overhead.py [--duration 10] [--concurrency 1 50 200] [--open] [--json OUT]

By default the gateway runs as a real deployment would ("keyed"): auth required, and every
request carries an API key (made with ``groundgate keys create`` into the bench's store) whose
key and tenant carry rate, token and concurrency limits and daily/monthly budgets, all set far
above the load so that each request is checked and settled but none is refused; prices are
set (spend is settled) and traces are written to the store. ``--open`` runs the older
configuration instead: auth open, no key, no limits. The JSON says which ran (``config``).

Prints throughput, p50/p99 latency, the overhead (through minus direct), the gateway's RSS
and its CPU milliseconds per request (medians over alternating rounds). The JSON also has
``rss_idle_mb`` (the gateway idle after a warm-up request, before any load) and, per
concurrency, ``cpu_ms_per_request`` and ``throughput_ratio`` (gateway rps / direct rps).
For scale, it also prints the fake upstream's own CPU per request ("up cpu"): a minimal
aiohttp server, whose cost per request rises at low concurrency just as the gateway's does
(fewer requests share each event-loop wake-up). Bars (2-core machine): p99 overhead <= 5 ms at
concurrency 50, <= 1 ms of server CPU per request, zero failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import closed_loop, start_fake_upstream, start_gateway

CONFIG = """
[server]
log_level = "warning"

[auth]
mode = "{auth_mode}"

[store]
path = "{workdir}/bench.db"

[providers.upstream]
type = "openai"
base_url = "%s/v1"
max_connections = 1024

[models.bench]
deployments = ["upstream:gpt-4o-mini"]

[prices."upstream:gpt-4o-mini"]
input_per_mtok = 0.15
output_per_mtok = 0.60
"""

REQUEST = {
    "model": "bench",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarise the benefits of connection pooling in two lines."},
    ],
    "temperature": 0.2,
    "max_tokens": 64,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="give the gateway its own core (default)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="direct/through pairs per level")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument(
        "--open",
        action="store_true",
        help="the older open configuration: no API key, no limits (default: keyed, limited)",
    )
    args = parser.parse_args()

    # By default the gateway gets a core of its own and the load generator and the fake
    # upstream share the rest, so that what is measured is the gateway's overhead rather
    # than three processes taking turns on two cores (--no-pin to let them share).
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    gateway_cores = {cores[0]} if args.pin and len(cores) >= 2 else None
    client_cores = set(cores[1:]) if gateway_cores else None
    if client_cores:
        os.sched_setaffinity(0, client_cores)
    upstream = start_fake_upstream(args.latency_ms, cores=client_cores)
    workdir = Path(tempfile.mkdtemp(prefix="groundgate-bench-"))
    config = (CONFIG % upstream.url).replace("{auth_mode}", "open" if args.open else "required")
    headers = {} if args.open else {"authorization": f"Bearer {create_key(workdir, config)}"}
    gateway = start_gateway(config, workdir=workdir, cores=gateway_cores)
    try:
        results = asyncio.run(
            run(args, upstream.url, gateway.url, gateway.pid, upstream.pid, headers)
        )
    finally:
        gateway.stop()
        upstream.stop()
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


async def run(
    args: argparse.Namespace,
    upstream_url: str,
    gateway_url: str,
    gateway_pid: int,
    upstream_pid: int,
    headers: dict[str, str],
) -> dict[str, object]:
    gateway_proc = psutil.Process(gateway_pid)
    upstream_proc = psutil.Process(upstream_pid)
    direct_body = orjson.dumps({**REQUEST, "model": "gpt-4o-mini"})
    through_body = orjson.dumps(REQUEST)
    # The footprint a deployment pays before any load: after one warm-up request (which
    # loads whatever the first request needs) and a moment of quiet.
    warm_up = await closed_loop(
        gateway_url + "/v1/chat/completions", through_body, 1, 0.3, warmup_s=0, headers=headers
    )
    if warm_up.ok == 0:
        raise RuntimeError(f"the warm-up request failed: {warm_up.error_samples}")
    await asyncio.sleep(1.0)
    rss_idle_mb = round(gateway_proc.memory_info().rss / 2**20, 1)
    levels = []
    for concurrency in args.concurrency:
        rounds = []
        # Direct and through alternate, several rounds, and the medians are reported: one
        # pass of each is at the mercy of whatever else the 2-core machine is doing.
        for _ in range(args.rounds):
            up_before = cpu_seconds(upstream_proc)
            direct = await closed_loop(
                upstream_url + "/v1/chat/completions", direct_body, concurrency, args.duration
            )
            up_cpu = cpu_seconds(upstream_proc) - up_before
            gw_before = cpu_seconds(gateway_proc)
            through = await closed_loop(
                gateway_url + "/v1/chat/completions",
                through_body,
                concurrency,
                args.duration,
                headers=headers,
            )
            gw_cpu = cpu_seconds(gateway_proc) - gw_before
            # CPU is measured over warm-up plus the measured window; so are the requests.
            warm = 1 + args.duration
            rounds.append(
                {
                    "direct": direct.summary(),
                    "through": through.summary(),
                    "overhead_p50_ms": through.percentile(50) - direct.percentile(50),
                    "overhead_p99_ms": through.percentile(99) - direct.percentile(99),
                    "server_cpu_ms_per_request": gw_cpu
                    * 1000
                    / max(through.ok * warm / args.duration, 1),
                    "upstream_cpu_ms_per_request": up_cpu
                    * 1000
                    / max(direct.ok * warm / args.duration, 1),
                    "failed": direct.errors + through.errors,
                    "error_samples": direct.error_samples + through.error_samples,
                }
            )
            await asyncio.sleep(0.3)
        direct_summary = median_summary([r["direct"] for r in rounds])
        through_summary = median_summary([r["through"] for r in rounds])
        cpu_ms_per_request = median(r["server_cpu_ms_per_request"] for r in rounds)
        levels.append(
            {
                "concurrency": concurrency,
                "direct": direct_summary,
                "through": through_summary,
                # Gateway throughput as a share of the upstream's own (1.0: no cost at all).
                "throughput_ratio": round(
                    through_summary["throughput_rps"] / max(direct_summary["throughput_rps"], 1e-9),
                    3,
                ),
                "overhead_p50_ms": median(r["overhead_p50_ms"] for r in rounds),
                "overhead_p99_ms": median(r["overhead_p99_ms"] for r in rounds),
                "cpu_ms_per_request": cpu_ms_per_request,
                # The same figure under its older name, for readers of earlier results.
                "server_cpu_ms_per_request": cpu_ms_per_request,
                "upstream_cpu_ms_per_request": median(
                    r["upstream_cpu_ms_per_request"] for r in rounds
                ),
                "server_rss_mb": round(gateway_proc.memory_info().rss / 2**20, 1),
                "failed": sum(r["failed"] for r in rounds),
                "rounds": rounds,
            }
        )
    return {
        "benchmark": "overhead",
        # keyed: API key, key and tenant limits and budgets, prices, traces stored;
        # open: auth open, no key, no limits (--open).
        "config": "open" if args.open else "keyed",
        "upstream_latency_ms": args.latency_ms,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "pinned": bool(args.pin),
        "cpu_count": psutil.cpu_count(),
        "python": sys.version.split()[0],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # The gateway's resident memory, idle after a warm-up request, before any load.
        "rss_idle_mb": rss_idle_mb,
        "levels": levels,
    }


# Far above any load this bench makes: every limit is checked and settled, none refuses.
LIMITS = ["--rpm", "10000000", "--tpm", "1000000000", "--concurrent", "5000"]
BUDGETS = ["--daily-budget", "1000000", "--monthly-budget", "10000000"]


def create_key(workdir: Path, config: str, scopes: tuple[str, ...] = ("chat",)) -> str:
    """An API key for the bench, made through the CLI into the bench's store, with limits and
    budgets on both the key and its tenant (as bench/peer.sh does)."""
    path = workdir / "groundgate.toml"
    path.write_text(config.replace("{workdir}", str(workdir)), "utf-8")
    cli = [sys.executable, "-m", "groundgate", "keys"]
    common = ["--config", str(path), *LIMITS, *BUDGETS, "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    subprocess.run(
        [*cli, "tenants", "set", "bench", *common], check=True, capture_output=True, env=env
    )
    out = subprocess.run(
        [
            *cli,
            "create",
            "--tenant",
            "bench",
            "--name",
            "bench",
            *(arg for scope in scopes for arg in ("--scope", scope)),
            *common,
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    key = json.loads(out.stdout).get("key")
    if not key:
        raise RuntimeError(f"could not create an API key: {out.stdout!r} {out.stderr!r}")
    return str(key)


def cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 3)


def median_summary(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "requests": sum(s["requests"] for s in summaries),
        "failed": sum(s["failed"] for s in summaries),
        "throughput_rps": median(s["throughput_rps"] for s in summaries),
        "p50_ms": median(s["p50_ms"] for s in summaries),
        "p99_ms": median(s["p99_ms"] for s in summaries),
    }


def print_table(results: dict[str, Any]) -> None:
    columns = [
        "conc",
        "direct rps",
        "gw rps",
        "direct p50",
        "gw p50",
        "direct p99",
        "gw p99",
        "ovh p50",
        "ovh p99",
        "cpu ms/req",
        "up cpu",
        "rss MB",
        "failed",
    ]
    print(f"config: {results['config']}")
    print(" ".join(f"{c:>10}" for c in columns))
    for lv in results["levels"]:
        d, t = lv["direct"], lv["through"]
        row = [
            lv["concurrency"],
            d["throughput_rps"],
            t["throughput_rps"],
            d["p50_ms"],
            t["p50_ms"],
            d["p99_ms"],
            t["p99_ms"],
            lv["overhead_p50_ms"],
            lv["overhead_p99_ms"],
            lv["server_cpu_ms_per_request"],
            lv["upstream_cpu_ms_per_request"],
            lv["server_rss_mb"],
            lv["failed"],
        ]
        print(" ".join(f"{v:>10}" for v in row))


if __name__ == "__main__":
    main()
