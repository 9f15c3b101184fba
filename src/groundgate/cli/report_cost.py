"""``groundgate report cost``: read the cost ledger of a window from the configured store, build
the report (observe/cost_report.py) and show it: a table on the terminal, and on request JSON,
Markdown and a PNG chart (with matplotlib, the dev extra; skipped with a note without it)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console, Group
from rich.table import Table

from groundgate.config import Settings
from groundgate.observe.cost_report import (
    PERCENTILES,
    ProjectionError,
    WhatIf,
    cost_report,
    observe,
)
from groundgate.store.ledger import LedgerRow

err = Console(stderr=True)
out = Console()


def run(
    settings: Settings,
    *,
    window_s: float,
    tenant: str | None,
    deployment: str | None,
    what_if: tuple[float | None, float | None, float | None],
    json_out: Path | None,
    markdown_out: Path | None,
    plot_out: Path | None,
) -> None:
    """The command: build the report of the last ``window_s`` seconds, print it and write the
    files asked for (``json_out`` "-": the JSON on stdout instead of the table)."""
    chosen = deployment or settings.cost.deployment
    if chosen not in settings.cost.deployments:
        known = ", ".join(sorted(settings.cost.deployments))
        err.print(f"[red]error:[/red] --deployment: no {chosen!r} ({known})", highlight=False)
        raise typer.Exit(2)
    until = time.time()
    try:
        result = build(
            settings,
            tenant=tenant,
            since=until - window_s,
            until=until,
            deployment=chosen,
            what_if=WhatIf(*what_if),
        )
    except ProjectionError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    chart = None
    if plot_out is not None:
        if plot(result, plot_out):
            chart = plot_out
        else:
            err.print("No chart: matplotlib is not installed (pip install matplotlib).")
    if markdown_out is not None:
        relative = None if chart is None else os.path.relpath(chart, markdown_out.parent)
        markdown_out.parent.mkdir(parents=True, exist_ok=True)
        markdown_out.write_text(markdown(result, relative), "utf-8")
    if json_out is not None and str(json_out) == "-":
        typer.echo(json.dumps(result, indent=2))
        return
    if json_out is not None:
        write_json(result, json_out)
    out.print(render(result))


def strong_tiers(settings: Settings) -> set[str]:
    """The tiers that top a route (tiers are written cheapest first)."""
    routes = [a.route for a in settings.apps.values()]
    routes += [m.route for m in settings.models.values()]
    return {list(r.tiers)[-1] for r in routes if r is not None and r.tiers}


async def _ledger(
    settings: Settings, tenant: str | None, since: float, until: float
) -> tuple[list[LedgerRow], dict[float, float]]:
    from groundgate.store import opened_store

    async with opened_store(settings.store) as store:
        rows = await store.ledger.rows(tenant, since, until)
        percentiles = await store.ledger.cost_percentiles(tenant, since, until, PERCENTILES)
        return rows, percentiles


def build(
    settings: Settings,
    *,
    tenant: str | None,
    since: float,
    until: float,
    deployment: str,
    what_if: WhatIf,
) -> dict[str, Any]:
    """The report of [since, until) as JSON-ready data (ProjectionError on a what-if the
    window cannot answer)."""
    rows, percentiles = asyncio.run(_ledger(settings, tenant, since, until))
    observed = observe(rows, percentiles, settings.prices, strong_tiers(settings))
    report = cost_report(observed, (deployment, settings.cost.deployments[deployment]), what_if)
    window = {"tenant": tenant, "since": _iso(since), "until": _iso(until)}
    report["observed"] = {"window": window, **report["observed"]}
    return report


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", "utf-8")


def _usd(value: float) -> str:
    """Dollars to the cent from $1, else to 4 significant digits (a request costs fractions)."""
    if value == 0:
        return "$0"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    return f"${value:.4g}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def summary_lines(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The observed figures as (label, value) pairs, for the terminal and Markdown alike."""
    o = report["observed"]
    cost = o["cost_per_request_usd"]
    cache, routes = o["cache"], o["routes"]
    window = o["window"]
    return [
        ("window", f"{window['since']} to {window['until']}"),
        ("tenant", window["tenant"] or "all"),
        ("requests", f"{o['requests']:,}"),
        ("errors", f"{o['errors']:,} ({_pct(o['error_rate'])})"),
        ("spend", _usd(o["cost_usd"])),
        (
            "cost per request",
            f"mean {_usd(cost['mean'])}, p50 {_usd(cost.get('p50', 0.0))},"
            f" p95 {_usd(cost.get('p95', 0.0))}",
        ),
        (
            "tokens per request",
            f"{o['prompt_tokens_per_request']:g} in, {o['completion_tokens_per_request']:g} out",
        ),
        (
            "cache",
            f"{cache['hits']:,} hits ({_pct(cache['hit_rate'])}), saved {_usd(cache['saved_usd'])}",
        ),
        (
            "routing",
            f"strong share {_pct(routes['strong_share'])}, saved {_usd(routes['saved_usd'])}",
        ),
    ]


def _tier_rows(report: dict[str, Any]) -> list[list[str]]:
    return [
        [
            t["tier"] or "(no tiers)",
            "yes" if t["strong"] else "",
            f"{t['requests']:,}",
            _pct(t["share"]),
            _usd(t["cost_per_request_usd"]),
            _usd(t["route_saved_usd"]),
        ]
        for t in report["observed"]["routes"]["tiers"]
    ]


_TIER_HEADERS = ["tier", "strong", "answers", "share", "cost/answer", "saved vs top"]
_PROJECTION_HEADERS = ["requests/month", "total/month", "variable", "fixed", "per request"]


def _projection_rows(report: dict[str, Any]) -> list[list[str]]:
    return [
        [
            f"{p['requests_per_month']:,}",
            _usd(p["usd_per_month"]),
            _usd(p["variable_usd_per_month"]),
            f"{_usd(p['fixed_usd_per_month'])} ({p['replicas']} replicas)",
            _usd(p["usd_per_request"]),
        ]
        for p in report["projections"]
    ]


def _assumption_text(report: dict[str, Any]) -> str:
    a = report["assumptions"]
    given = {k for k, v in a["what_if"].items() if v is not None}

    def mark(name: str) -> str:
        return " (what-if)" if name in given else ""

    return (
        f"cache hit rate {_pct(a['cache_hit_rate'])}{mark('cache_hit_rate')},"
        f" strong share {_pct(a['strong_share'])}{mark('strong_share')},"
        f" {a['output_tokens_per_answer']:g} output tokens per answer{mark('output_tokens')},"
        f" error rate {_pct(a['error_rate'])}; deployment {a['deployment']['name']!r}"
    )


def render(report: dict[str, Any]) -> Group:
    observed = Table(title="Observed cost", show_header=False)
    observed.add_column(style="bold")
    observed.add_column()
    for label, value in summary_lines(report):
        observed.add_row(label, value)
    tiers = Table(title="Route mix (generated answers)")
    for header in _TIER_HEADERS:
        tiers.add_column(header)
    for row in _tier_rows(report):
        tiers.add_row(*row)
    projections = Table(title="Projection", caption=_assumption_text(report))
    for header in _PROJECTION_HEADERS:
        projections.add_column(header, justify="right")
    for row in _projection_rows(report):
        projections.add_row(*row)
    return Group(observed, tiers, projections)


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(headers), "|" + "---|" * len(headers), *(line(r) for r in rows)]


def markdown(report: dict[str, Any], chart: str | None = None) -> str:
    """The report as Markdown; ``chart``: the PNG's path relative to the Markdown file."""
    lines = ["# Cost report", ""]
    lines += _md_table(["", "observed"], [list(pair) for pair in summary_lines(report)])
    lines += ["", "## Route mix (generated answers)", ""]
    lines += _md_table(_TIER_HEADERS, _tier_rows(report))
    lines += ["", "## Projection", ""]
    lines += _md_table(_PROJECTION_HEADERS, _projection_rows(report))
    lines += ["", f"Assumptions: {_assumption_text(report)}.", ""]
    days = report["observed"]["by_day"]
    if days:
        lines += ["## Spend per day", ""]
        lines += _md_table(
            ["day", "requests", "spend", "cache hits", "cache saved", "route saved"],
            [
                [
                    d["day"],
                    f"{d['requests']:,}",
                    _usd(d["cost_usd"]),
                    f"{d['cache_hits']:,}",
                    _usd(d["cache_saved_usd"]),
                    _usd(d["route_saved_usd"]),
                ]
                for d in days
            ],
        )
        lines.append("")
    if chart is not None:
        lines += [f"![cost chart]({chart})", ""]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> bool:
    """Spend and savings per day, and the monthly projection; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    days = report["observed"]["by_day"]
    projections = report["projections"]
    fig, (daily, monthly) = plt.subplots(1, 2, figsize=(12, 4.5))
    labels = [d["day"][5:] for d in days]
    x = list(range(len(days)))
    daily.bar(x, [d["cost_usd"] for d in days], label="spend", color="#4c72b0")
    daily.bar(
        x,
        [d["cache_saved_usd"] for d in days],
        bottom=[d["cost_usd"] for d in days],
        label="saved by the cache (on top)",
        color="#55a868",
    )
    daily.set_xticks(x, labels, rotation=45 if len(x) > 10 else 0)
    daily.set_ylabel("USD")
    daily.set_title("Observed spend per day")
    daily.legend()
    # Log-log lines, not stacked bars: on a log axis a stacked part's height says nothing.
    volumes = [p["requests_per_month"] for p in projections]
    for key, label, style in (
        ("usd_per_month", "total", "o-"),
        ("variable_usd_per_month", "model spend", "s--"),
        ("fixed_usd_per_month", "fixed (deployment)", "^:"),
    ):
        points = [(v, p[key]) for v, p in zip(volumes, projections, strict=True) if p[key] > 0]
        if points:
            monthly.plot(*zip(*points, strict=True), style, label=label)
    for volume, p in zip(volumes, projections, strict=True):
        monthly.annotate(
            _usd(p["usd_per_month"]),
            (volume, p["usd_per_month"]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
        )
    monthly.margins(x=0.1, y=0.15)
    monthly.set_xscale("log")
    monthly.set_yscale("log")
    monthly.set_xticks(volumes, [f"{v:,}" for v in volumes])
    monthly.set_xlabel("requests per month")
    monthly.set_ylabel("USD per month")
    monthly.set_title(f"Projection ({report['assumptions']['deployment']['name']})")
    monthly.legend(loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
