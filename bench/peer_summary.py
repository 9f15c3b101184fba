"""Combine the peer-bench harness's per-gateway results into one JSON file and one markdown
table, gateways side by side (called by bench/peer.sh; usable on its own).

    python bench/peer_summary.py --json OUT --target NAME=RESULTS_DIR [--target ...]
        [--meta KEY=VALUE ...]

Each RESULTS_DIR is what the harness's run_bench.sh wrote for one gateway (its summary.json,
meta.json and gateway_final_proc.json). Every run measures its own direct baseline (the same
load straight to the fake upstream), so each gateway's overhead is against the baseline taken
minutes apart from it, on the same cores; the direct figures of every run are printed so that
drift between runs shows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# Display names for the targets bench/peer.sh runs; any other name is shown as given.
TITLES = {
    "groundgate": "Groundgate (key)",
    "groundgate-open": "Groundgate (open)",
    "litellm": "LiteLLM",
}
LEGENDS = {
    "groundgate": "Groundgate (key): an API key with rate, token, concurrency and budget limits"
    " checked and settled on every request, prices, traces stored",
    "groundgate-open": "Groundgate (open): the same config, auth.mode = open (no key, no limits)",
    "litellm": "LiteLLM: the harness's config (master key, no database, no callbacks)",
}
PHASE_NAMES = {"conc": "c={}", "stream": "SSE c={}", "rate": "open {} req/s", "embed": "embed c={}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="write the combined JSON here")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--quick", action="store_true", help="mark the figures as a smoke run")
    parser.add_argument("--wall-s", type=int, help="the whole run's wall time")
    args = parser.parse_args()
    targets = dict(split_pair(t) for t in args.target)
    if not targets:
        parser.error("at least one --target NAME=DIR is needed")
    meta: dict[str, Any] = dict(split_pair(m) for m in args.meta)
    meta["quick"] = args.quick
    if args.wall_s is not None:
        meta["wall_s"] = args.wall_s
    results = combine(targets, meta)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(markdown(results))
    print(f"\nwrote {args.json}")


def split_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        sys.exit(f"expected KEY=VALUE, got {text!r}")
    return key, value


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def combine(targets: dict[str, str], meta: dict[str, Any]) -> dict[str, Any]:
    """One document: the run's metadata, each target's full harness summary, and a
    comparison row per load point with the figures the table shows."""
    summaries: dict[str, Any] = {}
    for name, folder in targets.items():
        summary = read_json(Path(folder) / "summary.json")
        if summary is None:
            sys.exit(f"{name}: no summary.json in {folder} (did its harness run finish?)")
        summaries[name] = {
            "title": TITLES.get(name, name),
            "results_dir": folder,
            "final_proc": read_json(Path(folder) / "gateway_final_proc.json"),
            "summary": summary,
        }
    points: list[tuple[str, str]] = []
    for entry in summaries.values():
        for row in entry["summary"]["rows"]:
            point = (row["phase"], row["level"])
            if point not in points:
                points.append(point)
    comparison = []
    for phase, level in points:
        per_target = {}
        for name, entry in summaries.items():
            row = next(
                (
                    r
                    for r in entry["summary"]["rows"]
                    if r["phase"] == phase and r["level"] == level
                ),
                None,
            )
            per_target[name] = figures(row)
        comparison.append(
            {
                "phase": phase,
                "level": level,
                "load": PHASE_NAMES[phase].format(level),
                "targets": per_target,
            }
        )
    first_meta = next(iter(summaries.values()))["summary"].get("meta", {})
    return {
        "benchmark": "peer",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **meta,
        "upstream_latency_ms": first_meta.get("upstream_latency_ms"),
        "duration_s": first_meta.get("duration_s"),
        "warmup_s": first_meta.get("warmup_s"),
        "load_tool": first_meta.get("tool"),
        "load_cpus": first_meta.get("load_cpus"),
        "nproc": first_meta.get("nproc"),
        "cpu": first_meta.get("cpu"),
        "comparison": comparison,
        "targets": summaries,
    }


def figures(row: dict[str, Any] | None) -> dict[str, Any]:
    """The figures of one gateway at one load point (None where the harness has no data)."""
    if row is None:
        return {}
    direct, gateway = row.get("direct") or {}, row.get("gateway") or {}
    overhead = row.get("overhead_ms") or {}
    ttft = row.get("ttft_overhead_ms") or {}
    proc = row.get("gateway_proc") or {}
    return {
        "direct_rps": direct.get("ok_rps"),
        "gateway_rps": gateway.get("ok_rps"),
        "gateway_errors": count_errors(gateway) if gateway else None,
        "overhead_p50_ms": overhead.get("p50"),
        "overhead_p99_ms": overhead.get("p99"),
        "ttft_overhead_p50_ms": ttft.get("p50"),
        "ttft_overhead_p99_ms": ttft.get("p99"),
        "cpu_ms_per_request": row.get("gateway_cpu_ms_per_req"),
        "rss_peak_mb": proc.get("peak_rss_mb"),
    }


def count_errors(result: dict[str, Any]) -> int:
    errors = result.get("errors") or {}
    return int(sum(v for v in errors.values() if isinstance(v, int | float)))


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def markdown(results: dict[str, Any]) -> str:
    names = list(results["targets"])
    titles = [results["targets"][n]["title"] for n in names]
    short = " / ".join(titles)
    lines = [
        f"Peer benchmark: {short}, Groundgate at {results.get('groundgate_commit', '?')}, "
        f"LiteLLM {results.get('litellm_version', '?')}; "
        f"upstream latency {results['upstream_latency_ms']} ms, "
        f"{results['duration_s']} s per point, load tool {results['load_tool']}, "
        f"gateway on CPU {results.get('gateway_cpus', '?')}, load + upstream on CPU "
        f"{results['load_cpus']} ({results['nproc']} CPUs: {results['cpu']}).",
        *(f"- {LEGENDS[n]}." for n in names if n in LEGENDS),
        *(["- SMOKE RUN (--quick): not figures to publish."] if results.get("quick") else []),
        "",
        "| load | direct req/s (each run) | "
        + " | ".join(f"{t} req/s" for t in titles)
        + " | "
        + " | ".join(f"{t} overhead p50 / p99 ms" for t in titles)
        + f" | CPU ms/req ({short}) | errors |",
        "|---|---:|" + "---:|" * len(names) + "---|" * len(names) + "---|---|",
    ]
    for point in results["comparison"]:
        figs = [point["targets"][n] for n in names]
        stream = point["phase"] == "stream"
        cells = [
            point["load"] + (" (TTFT overhead)" if stream else ""),
            " / ".join(num(f.get("direct_rps")) for f in figs),
            *(num(f.get("gateway_rps")) for f in figs),
            *(
                (
                    f"{num(f.get('ttft_overhead_p50_ms'))} / {num(f.get('ttft_overhead_p99_ms'))}"
                    if stream
                    else f"{num(f.get('overhead_p50_ms'))} / {num(f.get('overhead_p99_ms'))}"
                )
                for f in figs
            ),
            " / ".join(num(f.get("cpu_ms_per_request"), 2) for f in figs),
            " / ".join(num(f.get("gateway_errors"), 0) for f in figs),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    rss = []
    for name, title in zip(names, titles, strict=True):
        peaks = [
            p["targets"][name].get("rss_peak_mb")
            for p in results["comparison"]
            if p["targets"][name].get("rss_peak_mb") is not None
        ]
        final = results["targets"][name].get("final_proc") or {}
        span = f"{num(min(peaks))} to {num(max(peaks))} MB" if peaks else "-"
        rss.append(f"{title} {span} (at the end: {num(final.get('rss_mb'))} MB)")
    lines += ["", "RSS peak under load: " + "; ".join(rss) + "."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
