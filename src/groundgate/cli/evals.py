"""``groundgate eval``: run a golden set through an app and gate on the result.

``groundgate eval DATASET --app NAME`` runs (the ``run`` subcommand, the default, so the
command reads as it always has); the other subcommands work on stored runs and reports.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from groundgate.config import Settings

if TYPE_CHECKING:
    from groundgate.evals.report import EvalReport
    from groundgate.store import Store

err = Console(stderr=True)
out = Console()


class _RunByDefault(TyperGroup):
    """``eval ARGS`` means ``eval run ARGS`` unless ARGS start with a subcommand's name."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # click.Context
        first = next((a for a in args if not a.startswith("-")), None)
        if args and args[0] not in ("--help", "-h") and first not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


eval_app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help="Evaluate an app on a golden set; compare and list runs.",
)


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``eval``; ``load`` reads the config and exits cleanly if it is wrong."""
    app.add_typer(eval_app, name="eval")

    @eval_app.command("run")
    def run(
        dataset: Annotated[Path, typer.Argument(help="Golden set (JSONL).", dir_okay=False)],
        app_name: Annotated[str, typer.Option("--app", help="The app to evaluate.")],
        out: Annotated[Path | None, typer.Option(help="Write the JSON report here.")] = None,
        baseline: Annotated[Path | None, typer.Option(help="Compare with this report.")] = None,
        max_drop: Annotated[float, typer.Option(help="Largest allowed drop per metric.")] = 0.02,
        concurrency: Annotated[int, typer.Option(help="Cases in flight.")] = 4,
        k: Annotated[int, typer.Option("-k", help="Cut-off for recall@k and MRR.")] = 10,
        confidence: Annotated[float, typer.Option(help="Confidence of the gate.")] = 0.95,
        retries: Annotated[int, typer.Option(help="Retries of a failed case.")] = 1,
        cache: Annotated[
            Path, typer.Option(help="The eval cache (SQLite).", dir_okay=False)
        ] = Path(".groundgate/eval-cache.sqlite"),
        no_cache: Annotated[bool, typer.Option("--no-cache", help="Answer every case.")] = False,
        no_store: Annotated[bool, typer.Option("--no-store", help="Do not store the run.")] = False,
        variant: Annotated[
            str | None, typer.Option(help="Pin this A/B variant of the app's split.")
        ] = None,
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
    ) -> None:
        """Run a golden set through an app and score it; with --baseline, exit 1 on a drop
        larger than --max-drop that is also significant (the gate to put in CI)."""
        from groundgate.errors import ConfigError
        from groundgate.evals.variants import pin_variant

        settings = load(config)
        if app_name not in settings.apps:
            known = ", ".join(sorted(settings.apps)) or "none"
            err.print(f"[red]error:[/red] no app named {app_name!r} (configured: {known})")
            raise typer.Exit(2)
        if variant is not None:
            try:
                settings = pin_variant(settings, app_name, variant)
            except ConfigError as exc:
                err.print(f"[red]error:[/red] {exc.problems[0]}", highlight=False)
                raise typer.Exit(2) from None
        options = RunOptions(
            out=out,
            baseline=baseline,
            max_drop=max_drop,
            concurrency=concurrency,
            k=k,
            confidence=confidence,
            retries=retries,
            variant=variant,
            cache=None if no_cache else cache,
            store=not no_store,
        )
        raise typer.Exit(asyncio.run(_eval(settings, dataset, app_name, options)))

    @eval_app.command("compare")
    def compare(
        run_a: Annotated[str, typer.Argument(help="Baseline: a report file or stored run id.")],
        run_b: Annotated[str, typer.Argument(help="Candidate: a report file or stored run id.")],
        max_drop: Annotated[float, typer.Option(min=0, help="Largest allowed drop.")] = 0.02,
        confidence: Annotated[float, typer.Option(min=0.5, max=0.999)] = 0.95,
        metric: Annotated[
            list[str] | None, typer.Option("--metric", help="Compare only these metrics.")
        ] = None,
        seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
    ) -> None:
        """Compare two runs case by case: per metric A, B, the difference with its paired
        bootstrap CI and significance, and the cases that flipped. Exits 1 when a metric
        dropped by more than --max-drop and the drop is significant."""
        from groundgate.evals.compare import compare_runs, comparison_table, flips_table
        from groundgate.evals.report import ReportError

        try:
            # A ref naming a file is a report; anything else a stored run's id.
            files = [Path(ref).is_file() for ref in (run_a, run_b)]
            a, b = asyncio.run(_reports([run_a, run_b], files, load, config))
        except ReportError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
        result = compare_runs(
            a, b, max_drop=max_drop, confidence=confidence, metrics=metric or None, seed=seed
        )
        if as_json:
            typer.echo(json.dumps({"a": run_a, "b": run_b, **result.to_dict()}))
        else:
            wide = _wide()
            wide.print(comparison_table(result, "A", "B"))
            flips = flips_table(result)
            wide.print(flips if flips is not None else "No case flipped.")
            for note in result.notes:
                wide.print(f"note: {note}", highlight=False, markup=False)
        raise typer.Exit(0 if result.passed else 1)

    @eval_app.command("history")
    def history(
        app_name: Annotated[str | None, typer.Option("--app", help="Only this app.")] = None,
        dataset: Annotated[str | None, typer.Option(help="Only this dataset (as run).")] = None,
        metric: Annotated[
            list[str] | None, typer.Option("--metric", help="Metrics to show.")
        ] = None,
        limit: Annotated[int, typer.Option(min=1, max=1000, help="Newest runs shown.")] = 20,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
    ) -> None:
        """The stored runs, oldest first, with each metric's change from the run before."""
        from dataclasses import asdict

        from groundgate.evals.history import history_table, shown_metrics

        settings = load(config)
        runs = asyncio.run(_history(settings, app_name, dataset, limit))
        runs.reverse()  # oldest first: a trend reads left to right, top to bottom
        if as_json:
            for run in runs:
                typer.echo(json.dumps({k: v for k, v in asdict(run).items() if k != "report"}))
            return
        if not runs:
            err.print("No stored eval runs.")
            return
        _wide().print(history_table(runs, shown_metrics(runs, metric)))


def _wide() -> Console:
    """Tables as wide as they need when written to a file or pipe (a log in CI)."""
    return out if out.is_terminal else Console(width=160)


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What ``eval run`` was told, beyond the dataset and the app."""

    out: Path | None
    baseline: Path | None
    max_drop: float
    concurrency: int
    k: int
    confidence: float
    retries: int
    variant: str | None
    cache: Path | None  # None: --no-cache
    store: bool


async def _eval(settings: Settings, dataset: Path, app_name: str, options: RunOptions) -> int:
    from groundgate.container import Container
    from groundgate.evals.app_answerer import AppAnswerer
    from groundgate.evals.cache import SQLiteEvalCache
    from groundgate.evals.history import store_run
    from groundgate.evals.runner import eval_command

    runtime = Container(settings)
    await runtime.start()
    cache = SQLiteEvalCache(options.cache) if options.cache is not None else None

    async def record(report: EvalReport) -> str:
        return await store_run(runtime.store.eval_runs, report)

    try:
        return await eval_command(
            dataset,
            AppAnswerer(runtime, app_name, variant=options.variant),
            app=app_name,
            out=options.out,
            baseline=options.baseline,
            max_drop=options.max_drop,
            concurrency=options.concurrency,
            k=options.k,
            console=_wide(),
            confidence=options.confidence,
            retries=options.retries,
            cache=cache,
            record=record if options.store else None,
        )
    finally:
        if cache is not None:
            cache.close()
        await runtime.stop()


async def _open_store(settings: Settings) -> Store:
    from groundgate.store import open_store

    store = open_store(settings.store)
    await store.open()
    return store


async def _reports(
    refs: list[str],
    files: list[bool],
    load: Callable[[Path | None], Settings],
    config: Path | None,
) -> list[EvalReport]:
    """Each ref as a report: a report file, else a stored run's id (the store opened once)."""
    from groundgate.evals.history import stored_report
    from groundgate.evals.report import load_report

    reports: list[EvalReport] = []
    store: Store | None = None
    try:
        for ref, is_file in zip(refs, files, strict=True):
            if is_file or ref.endswith(".json"):
                reports.append(load_report(ref))
                continue
            store = store or await _open_store(load(config))
            reports.append(await stored_report(store.eval_runs, ref))
    finally:
        if store is not None:
            await store.close()
    return reports


async def _history(
    settings: Settings, app: str | None, dataset: str | None, limit: int
) -> list[Any]:
    from groundgate.evals.history import TENANT

    store = await _open_store(settings)
    try:
        return await store.eval_runs.list_eval_runs(TENANT, app=app, dataset=dataset, limit=limit)
    finally:
        await store.close()
