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
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from groundgate.config import Settings

if TYPE_CHECKING:
    from groundgate.container import Container
    from groundgate.evals.judge import Judge
    from groundgate.evals.report import EvalReport
    from groundgate.evals.scoring import CaseScorer, EvalCache
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
        score: Annotated[
            list[str] | None,
            typer.Option(
                "--score",
                metavar="NAME",
                help="An added scorer (repeat): schema, regex, similarity, context, "
                "faithfulness, relevance, judge. Default: all but judge, and judge with --judge.",
            ),
        ] = None,
        judge: Annotated[
            str | None, typer.Option("--judge", metavar="MODEL", help="The judge's model.")
        ] = None,
        rubric: Annotated[
            str | None, typer.Option(help="What the judge checks (a case's rubric wins).")
        ] = None,
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
        names = _scorer_names(settings, score, judge)
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
            scoring=_Scoring(names, judge, rubric),
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

    @eval_app.command("pairwise")
    def pairwise(
        report_a: Annotated[
            Path, typer.Argument(help="A report (eval run --out).", dir_okay=False)
        ],
        report_b: Annotated[
            Path, typer.Argument(help="The report to compare with.", dir_okay=False)
        ],
        judge: Annotated[str, typer.Option("--judge", metavar="MODEL", help="The judge's model.")],
        rubric: Annotated[str | None, typer.Option(help="What makes an answer better.")] = None,
        concurrency: Annotated[int, typer.Option(min=1, help="Cases in flight.")] = 4,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
    ) -> None:
        """Judge two reports' answers case by case (matched by id), each pair in both orders:
        wins for A, losses (wins for B) and ties."""
        from groundgate.evals.report import ReportError, load_report

        settings = load(config)
        _check_judge(settings, judge)
        try:
            first, second = load_report(report_a), load_report(report_b)
        except ReportError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
        raise typer.Exit(
            asyncio.run(_pairwise(settings, first, second, judge, rubric, concurrency, as_json))
        )


def _check_judge(settings: Settings, judge: str) -> None:
    if judge not in settings.models:
        known = ", ".join(sorted(settings.models)) or "none"
        err.print(f"[red]error:[/red] --judge: no model named {judge!r} (configured: {known})")
        raise typer.Exit(2)


def _scorer_names(settings: Settings, score: list[str] | None, judge: str | None) -> list[str]:
    """The scorers asked for (the default set when none is named), checked."""
    from groundgate.evals.builtin_scorers import LOCAL_SCORERS, SCORER_NAMES

    if not score:
        names = [*LOCAL_SCORERS, *(["judge"] if judge else [])]
    else:
        names = list(dict.fromkeys(score))
    unknown = [n for n in names if n not in SCORER_NAMES]
    if unknown:
        err.print(
            f"[red]error:[/red] --score: unknown scorer {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(SCORER_NAMES)})"
        )
        raise typer.Exit(2)
    if "judge" in names and judge is None:
        err.print("[red]error:[/red] --score judge needs --judge MODEL")
        raise typer.Exit(2)
    if judge is not None:
        _check_judge(settings, judge)
    return names


class _Scoring:
    """The run's added scorers, built once the Container has started."""

    def __init__(self, names: list[str], judge_model: str | None, rubric: str | None) -> None:
        self.names, self.judge_model, self.rubric = names, judge_model, rubric
        self.judge: Judge | None = None

    def build(self, runtime: Container, cache: EvalCache | None = None) -> list[CaseScorer]:
        from groundgate.evals.builtin_scorers import local_scorers
        from groundgate.evals.judge import Judge, JudgeScorer

        built = local_scorers([n for n in self.names if n != "judge"])
        if "judge" in self.names and self.judge_model is not None:
            self.judge = Judge(runtime, self.judge_model, cache=cache)
            built.append(JudgeScorer(self.judge, self.rubric))
        return built

    def summary(self) -> str | None:
        if self.judge is None:
            return None
        t = self.judge.tally
        return (
            f"judge {self.judge.model} ({self.judge.rubric_prompt.ref}): {t.verdicts} scored, "
            f"{t.unparseable} unparseable, {t.failed} failed, {t.cached} from the eval cache; "
            f"{t.upstream_calls} upstream calls, ${t.cost_usd:.6f}"
        )


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
    scoring: _Scoring | None = None


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

    # The judge's verdicts are kept in the same cache: a re-run pays for neither.
    scorers = options.scoring.build(runtime, cache) if options.scoring is not None else []
    try:
        code = await eval_command(
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
            scorers=scorers,
        )
        summary = options.scoring.summary() if options.scoring is not None else None
        if summary is not None:
            out.print(escape(summary), highlight=False)
        return code
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


async def _pairwise(
    settings: Settings,
    report_a: Any,
    report_b: Any,
    judge_model: str,
    rubric: str | None,
    concurrency: int,
    as_json: bool,
) -> int:
    from groundgate.container import Container
    from groundgate.evals.judge import Judge, compare_reports

    runtime = Container(settings)
    await runtime.start()
    try:
        judge = Judge(runtime, judge_model)
        summary = await compare_reports(
            judge, report_a, report_b, rubric=rubric, concurrency=concurrency
        )
    finally:
        await runtime.stop()
    if as_json:
        import json
        from dataclasses import asdict

        typer.echo(json.dumps({"object": "eval.pairwise", **asdict(summary)}))
        return 0
    table = Table(title=f"{judge_model} judging ({summary.prompt}), both orders per case")
    for column in ("case", "verdict", "A first", "B first", "note"):
        table.add_column(column)
    shown = {"a": "A wins", "b": "B wins", "tie": "tie", None: "-"}
    for case in summary.cases:
        table.add_row(
            escape(case.id),
            shown[case.winner],
            escape(case.orders[0] or "-"),
            escape(case.orders[1] or "-"),
            escape(case.note),
        )
    out.print(table)
    out.print(
        f"A wins {summary.wins}, B wins {summary.losses}, ties {summary.ties}, "
        f"not judged {summary.unjudged}; {summary.upstream_calls} upstream calls, "
        f"${summary.cost_usd:.6f}",
        highlight=False,
    )
    return 0
