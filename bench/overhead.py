"""Gateway overhead: the same chat request sent straight to a fake upstream (50 ms latency)
and through Groundgate, at several concurrencies.

    python bench/overhead.py [--duration 10] [--concurrency 1 50 200] [--json OUT]

Prints throughput, p50/p99 latency, the overhead (through minus direct), the gateway's RSS
and its CPU milliseconds per request. Bars (2-core machine): p99 overhead <= 5 ms at
concurrency 50, <= 1 ms of server CPU per request, zero failed requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import closed_loop, start_fake_upstream, start_gateway

CONFIG = """
[server]
log_level = "warning"

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
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    upstream = start_fake_upstream(args.latency_ms)
    gateway = start_gateway(CONFIG % upstream.url)
    try:
        results = asyncio.run(run(args, upstream.url, gateway.url, gateway.pid))
    finally:
        gateway.stop()
        upstream.stop()
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


async def run(
    args: argparse.Namespace, upstream_url: str, gateway_url: str, gateway_pid: int
) -> dict[str, object]:
    proc = psutil.Process(gateway_pid)
    direct_body = orjson.dumps({**REQUEST, "model": "gpt-4o-mini"})
    through_body = orjson.dumps(REQUEST)
    levels = []
    for concurrency in args.concurrency:
        direct = await closed_loop(
            upstream_url + "/v1/chat/completions", direct_body, concurrency, args.duration
        )
        cpu_before = proc.cpu_times()
        through = await closed_loop(
            gateway_url + "/v1/chat/completions",
            through_body,
            concurrency,
            args.duration,
            warmup_s=0,
        )
        cpu_after = proc.cpu_times()
        cpu_s = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        requests = through.ok + through.errors
        levels.append(
            {
                "concurrency": concurrency,
                "direct": direct.summary(),
                "through": through.summary(),
                "overhead_p50_ms": round(through.percentile(50) - direct.percentile(50), 3),
                "overhead_p99_ms": round(through.percentile(99) - direct.percentile(99), 3),
                "server_cpu_ms_per_request": round(cpu_s * 1000 / max(requests, 1), 3),
                "server_rss_mb": round(proc.memory_info().rss / 2**20, 1),
                "failed": direct.errors + through.errors,
                "error_samples": direct.error_samples + through.error_samples,
            }
        )
        await asyncio.sleep(0.5)
    return {
        "benchmark": "overhead",
        "upstream_latency_ms": args.latency_ms,
        "duration_s": args.duration,
        "cpu_count": psutil.cpu_count(),
        "python": sys.version.split()[0],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "levels": levels,
    }


def print_table(results: dict[str, object]) -> None:
    header = (
        f"{'conc':>5} {'direct rps':>10} {'gw rps':>8} {'direct p50':>10} "
        f"{'gw p50':>8} {'direct p99':>10} {'gw p99':>8} {'ovh p50':>8} {'ovh p99':>8} "
        f"{'cpu ms/req':>10} {'rss MB':>7} {'failed':>6}"
    )
    print(header)
    for lv in results["levels"]:  # type: ignore[attr-defined]
        d, t = lv["direct"], lv["through"]
        print(
            f"{lv['concurrency']:>5} {d['throughput_rps']:>10} {t['throughput_rps']:>8} "
            f"{d['p50_ms']:>10.2f} {t['p50_ms']:>8.2f} {d['p99_ms']:>10.2f} "
            f"{t['p99_ms']:>8.2f} {lv['overhead_p50_ms']:>8.2f} {lv['overhead_p99_ms']:>8.2f} "
            f"{lv['server_cpu_ms_per_request']:>10.3f} {lv['server_rss_mb']:>7} "
            f"{lv['failed']:>6}"
        )


if __name__ == "__main__":
    main()
