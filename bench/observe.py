"""The hot-path cost of the OpenTelemetry export: the gateway's CPU per request at concurrency
50 with the exporter off and on (OTLP/HTTP to a real receiver, ``groundgate.testing.
otlp_receiver``, running in this process), measured as ``bench/overhead.py`` measures it.

    python bench/observe.py [--duration 10] [--rounds 3] [--concurrency 50] [--json OUT]

Two gateways run the same keyed configuration as bench/overhead.py (API key, limits, budgets,
prices, traces stored), one with ``[otel] enabled = false`` and one exporting every request's
spans and recording the GenAI metrics with the shipped defaults (``--metrics-interval`` sets
how often the metrics are exported; the default, 60 s, leaves their export out of a short
window). Off and on alternate, several rounds, on the same pinned core; the medians are
reported. The JSON holds ``cpu_ms_per_request_off``, ``cpu_ms_per_request_on`` (their
difference is the export's cost; the bar is 0.1 ms), ``spans_received`` (by the receiver, after
a final flush) and ``spans_dropped`` (spans the gateway dropped or failed to export, from its
``/readyz``), plus each round's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Server, closed_loop, start_fake_upstream, start_gateway
from groundgate.testing.otlp_receiver import OtlpReceiver
from overhead import CONFIG, REQUEST, cpu_seconds, create_key, median

OTEL_OFF = """
[otel]
enabled = false
"""
OTEL_ON = """
[otel]
endpoint = "%s"
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument(
        "--metrics-interval",
        type=float,
        help="seconds between metric exports (default: the gateway's, 60 s)",
    )
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    gateway_cores = {cores[0]} if len(cores) >= 2 else None
    client_cores = set(cores[1:]) if gateway_cores else None
    if client_cores:
        os.sched_setaffinity(0, client_cores)
    receiver = OtlpReceiver()
    receiver.start_http()
    upstream = start_fake_upstream(args.latency_ms, cores=client_cores)
    gateways: dict[str, Server] = {}
    try:
        headers = {}
        on = OTEL_ON % receiver.http_url
        if args.metrics_interval is not None:
            on += f"metrics_interval_s = {args.metrics_interval}\n"
        for name, section in (("off", OTEL_OFF), ("on", on)):
            workdir = Path(tempfile.mkdtemp(prefix=f"groundgate-observe-{name}-"))
            config = (CONFIG % upstream.url).replace("{auth_mode}", "required") + section
            key = create_key(workdir, config, scopes=("chat", "metrics"))
            headers[name] = {"authorization": f"Bearer {key}"}
            gateways[name] = start_gateway(config, workdir=workdir, cores=gateway_cores)
        results = asyncio.run(run(args, gateways, headers, receiver))
    finally:
        for server in gateways.values():
            server.stop()
        upstream.stop()
        receiver.stop()
    print(
        f"cpu ms/request at c={args.concurrency}: off {results['cpu_ms_per_request_off']}, "
        f"on {results['cpu_ms_per_request_on']} (added {results['cpu_ms_added']}); "
        f"spans received {results['spans_received']}, dropped {results['spans_dropped']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


async def run(
    args: argparse.Namespace,
    gateways: dict[str, Server],
    headers: dict[str, dict[str, str]],
    receiver: OtlpReceiver,
) -> dict[str, Any]:
    body = orjson.dumps(REQUEST)
    procs = {name: psutil.Process(server.pid) for name, server in gateways.items()}
    for name, server in gateways.items():
        warm = await closed_loop(
            server.url + "/v1/chat/completions", body, 1, 0.3, warmup_s=0, headers=headers[name]
        )
        if warm.ok == 0:
            raise RuntimeError(f"the warm-up request failed ({name}): {warm.error_samples}")
    await asyncio.sleep(1.0)
    rounds: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        row: dict[str, Any] = {}
        for name in ("off", "on"):
            before = cpu_seconds(procs[name])
            load = await closed_loop(
                gateways[name].url + "/v1/chat/completions",
                body,
                args.concurrency,
                args.duration,
                headers=headers[name],
            )
            used = cpu_seconds(procs[name]) - before
            # As bench/overhead.py: CPU over warm-up plus window, and so the requests.
            warm = 1 + args.duration
            row[name] = {
                **load.summary(),
                "cpu_ms_per_request": used * 1000 / max(load.ok * warm / args.duration, 1),
            }
            await asyncio.sleep(0.3)
        rounds.append(row)
    # Everything queued reaches the receiver within the processor's schedule delay (1 s).
    await asyncio.sleep(3.0)
    async with httpx.AsyncClient(timeout=10) as client:
        ready = (await client.get(gateways["on"].url + "/readyz", headers=headers["on"])).json()
    spans = ready.get("otel", {}).get("spans", {})
    off = median(r["off"]["cpu_ms_per_request"] for r in rounds)
    on = median(r["on"]["cpu_ms_per_request"] for r in rounds)
    return {
        "benchmark": "observe",
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "rounds": args.rounds,
        "upstream_latency_ms": args.latency_ms,
        "metrics_interval_s": args.metrics_interval or 60.0,
        "cpu_count": psutil.cpu_count(),
        "python": sys.version.split()[0],
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cpu_ms_per_request_off": off,
        "cpu_ms_per_request_on": on,
        "cpu_ms_added": round(on - off, 3),
        "spans_received": receiver.span_count,
        "spans_dropped": int(spans.get("dropped", 0)) + int(spans.get("failed", 0)),
        "gateway_otel": spans,
        "failed_requests": sum(r[n]["failed"] for r in rounds for n in ("off", "on")),
        "round_figures": rounds,
    }


if __name__ == "__main__":
    main()
