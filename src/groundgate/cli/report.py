"""``groundgate report``: reports over the stored traces, straight from the configured store.

``report ab --target NAME`` compares the variants of an app's or model's A/B split
(``evals/ab.py``): requests, error rate, latency, cost per request, guard outcomes and feedback,
each mean with a bootstrap confidence interval, and each variant's difference to the control
(the first variant configured, or ``--control``).

``report cost`` shows the spend of a window from the cost ledger and projects it to 100K, 1M
and 10M requests a month, with what-ifs (``cli/report_cost.py``, ``observe/cost_report.py``).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from groundgate.config import Settings
from groundgate.evals.ab import METRICS, RESAMPLES, Comparison, Estimate, compare
from groundgate.store.variants import VariantTrace

err = Console(stderr=True)
out = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
]
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_LABELS = {
    "error_rate": "error rate (%)",
    "latency_ms": "latency mean (ms)",
    "cost_usd": "cost per request (USD)",
    "guard_block": "guard blocked (%)",
    "guard_flag": "guard flagged (%)",
    "guard_review": "guard sent for review (%)",
    "feedback": "feedback score",
}
_GUARDS = ("guard_block", "guard_flag", "guard_review")


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``24h``, ``7d``, ``2w`` in seconds; ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"not a duration like 30m, 24h or 7d: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def configured_order(settings: Settings, target: str) -> list[str] | None:
    """The variant names of ``target`` as configured (None: no app or model of that name)."""
    owner = settings.apps.get(target) or settings.models.get(target)
    return None if owner is None else [v.name for v in owner.variants]


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``report``; ``load`` reads the config and exits cleanly if it is wrong."""
    report_app = typer.Typer(help="Reports over the stored traces.", no_args_is_help=True)
    app.add_typer(report_app, name="report")

    @report_app.command("ab")
    def ab(
        target: Annotated[str, typer.Option("--target", help="The app or model split.")],
        since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d, ...")] = "7d",
        control: Annotated[
            str | None, typer.Option(help="The variant to compare to (default: the first).")
        ] = None,
        tenant: Annotated[str, typer.Option(help="The tenant whose traffic this is.")] = "default",
        resamples: Annotated[int, typer.Option(min=100, max=100_000)] = RESAMPLES,
        seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        config: ConfigOption = None,
    ) -> None:
        """Compare the variants of an A/B split on latency, cost, guard outcomes and feedback,
        with bootstrap confidence intervals."""
        settings = load(config)
        try:
            window = parse_duration(since)
        except ValueError as exc:
            err.print(f"[red]error:[/red] --since: {exc}", highlight=False)
            raise typer.Exit(2) from None
        order = configured_order(settings, target)
        until = time.time()
        traces, scores = asyncio.run(_traces(settings, tenant, target, until - window, until))
        names = list(order or [])
        if control is not None:
            names = [control, *(n for n in names if n != control)]
        result = compare(
            target, traces, order=names, feedback=scores, resamples=resamples, seed=seed
        )
        if control is not None and result.control != control:
            err.print(f"[red]error:[/red] no traces of variant {control!r}", highlight=False)
            raise typer.Exit(2)
        if as_json:
            typer.echo(json.dumps({"since": until - window, "until": until, **result.as_dict()}))
            return
        if not result.variants:
            known = "" if order is not None else f" (no app or model is named {target!r})"
            err.print(f"No A/B traces of {target!r} in the last {since}{known}.", highlight=False)
            return
        out.print(render(result, since))

    @report_app.command("cost")
    def cost(
        since: Annotated[str, typer.Option(help="How far back: 30m, 24h, 7d, ...")] = "30d",
        tenant: Annotated[
            str | None, typer.Option(help="One tenant's traffic (default: every tenant).")
        ] = None,
        deployment: Annotated[
            str | None,
            typer.Option(help="The [cost.deployments] row to price (default: cost.deployment)."),
        ] = None,
        cache_hit_rate: Annotated[
            float | None, typer.Option(min=0, max=1, help="What if the cache answered this share.")
        ] = None,
        strong_share: Annotated[
            float | None,
            typer.Option(min=0, max=1, help="What if this share of routed answers were strong."),
        ] = None,
        output_tokens: Annotated[
            float | None, typer.Option(min=0, help="What if answers were this many tokens long.")
        ] = None,
        json_out: Annotated[
            Path | None, typer.Option("--json", help="Write the report as JSON here (- prints).")
        ] = None,
        markdown_out: Annotated[
            Path | None, typer.Option("--markdown", help="Write the report as Markdown here.")
        ] = None,
        plot_out: Annotated[
            Path | None, typer.Option("--plot", help="Draw the chart to this PNG (matplotlib).")
        ] = None,
        config: ConfigOption = None,
    ) -> None:
        """Spend per request, cache and route mix from the traces, and what it comes to at
        100K, 1M and 10M requests a month."""
        from groundgate.cli.report_cost import run

        settings = load(config)
        try:
            window = parse_duration(since)
        except ValueError as exc:
            err.print(f"[red]error:[/red] --since: {exc}", highlight=False)
            raise typer.Exit(2) from None
        run(
            settings,
            window_s=window,
            tenant=tenant,
            deployment=deployment,
            what_if=(cache_hit_rate, strong_share, output_tokens),
            json_out=json_out,
            markdown_out=markdown_out,
            plot_out=plot_out,
        )


async def _traces(
    settings: Settings, tenant: str, target: str, since: float, until: float
) -> tuple[list[VariantTrace], dict[str, float]]:
    """The split's traces, and the mean feedback score of each that was scored (feedback
    comes after its answer: all of it given since the window began counts)."""
    from groundgate.store import opened_store
    from groundgate.store.feedback import every_feedback, mean_scores

    async with opened_store(settings.store) as store:
        traces = await store.variant_traces(tenant, target, since, until)
        given = await every_feedback(store.feedback, tenant, target=target, since=since)
        return traces, mean_scores(given)


def render(result: Comparison, since: str) -> Table:
    """Metrics down, variants across: each mean with its interval, and under it the
    difference to the control (bold where the interval leaves out 0). Cells are plain
    ``Text``: an interval's brackets are not markup. Guard outcomes no request had are left
    out, and so is feedback while none is recorded (the caption says so)."""
    percent = round(result.confidence * 100)
    quiet = [name for name in _GUARDS if all(not v.metrics[name].value for v in result.variants)]
    notes = [] if result.has_feedback else ["no feedback recorded"]
    if len(quiet) == len(_GUARDS):
        notes.append("no guard blocked, flagged or sent any request for review")
    table = Table(
        title=f"A/B split of {result.target!r}, last {since} ({percent}% bootstrap intervals)",
        caption="; ".join(notes) or None,
    )
    table.add_column("metric")
    for v in result.variants:
        role = " (control)" if v.name == result.control else ""
        table.add_column(f"{v.name}{role}", overflow="fold")
    table.add_row("requests", *(str(v.requests) for v in result.variants))
    table.add_row("latency p50 (ms)", *(_number(v.latency_p50_ms, "ms") for v in result.variants))
    for metric in METRICS:
        if metric.name in quiet or (metric.name == "feedback" and not result.has_feedback):
            continue
        cells = []
        for v in result.variants:
            cell = Text(_interval(v.metrics[metric.name], metric.unit))
            if v.vs_control is not None:
                difference = v.vs_control[metric.name]
                style = "bold" if difference.excludes_zero else ""
                cell.append("\nΔ " + _interval(difference, metric.unit, signed=True), style)
            cells.append(cell)
        table.add_row(_LABELS.get(metric.name, metric.name), *cells)
    return table


def _number(value: float | None, unit: str, *, signed: bool = False) -> str:
    """``value`` in the unit its row names: shares as percentages, costs to 4 digits."""
    if value is None:
        return "-"
    sign = "+" if signed else ""
    if unit == "share":
        return f"{value * 100:{sign}.1f}"
    if unit == "ms":
        return f"{value:{sign}.1f}"
    if unit == "usd":
        return f"{value:{sign}.4g}"
    return f"{value:{sign}.3f}"


def _interval(estimate: Estimate, unit: str, *, signed: bool = False) -> str:
    text = _number(estimate.value, unit, signed=signed)
    if estimate.value is None or estimate.low is None or estimate.high is None:
        return text
    low = _number(estimate.low, unit, signed=signed)
    high = _number(estimate.high, unit, signed=signed)
    return f"{text} [{low}, {high}]"
