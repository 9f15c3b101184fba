"""``groundgate eval``: run a golden set through an app and gate on the result.

``groundgate eval DATASET --app NAME`` runs (the ``run`` subcommand, the default, so the
command reads as it always has); the other subcommands work on stored runs and reports.
``--score NAME`` picks the added scorers (``evals/builtin_scorers.py``; all the local ones by
default, and the LLM judge with ``--judge MODEL``); ``eval pairwise A B --judge MODEL`` has a
judge compare two reports' answers case by case.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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
    from groundgate.evals.scoring import CaseScorer

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
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
    ) -> None:
        """Run a golden set through an app and score it; with --baseline, exit 1 on a
        regression larger than --max-drop (the gate to put in CI)."""
        settings = load(config)
        if app_name not in settings.apps:
            known = ", ".join(sorted(settings.apps)) or "none"
            err.print(f"[red]error:[/red] no app named {app_name!r} (configured: {known})")
            raise typer.Exit(2)
        names = _scorer_names(settings, score, judge)
        raise typer.Exit(
            asyncio.run(
                _eval(
                    settings,
                    dataset,
                    app_name,
                    out,
                    baseline,
                    max_drop,
                    concurrency,
                    k,
                    _Scoring(names, judge, rubric),
                )
            )
        )

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

    def build(self, runtime: Container) -> list[CaseScorer]:
        from groundgate.evals.builtin_scorers import local_scorers
        from groundgate.evals.judge import Judge, JudgeScorer

        built = local_scorers([n for n in self.names if n != "judge"])
        if "judge" in self.names and self.judge_model is not None:
            self.judge = Judge(runtime, self.judge_model)
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


async def _eval(
    settings: Settings,
    dataset: Path,
    app_name: str,
    report: Path | None,
    baseline: Path | None,
    max_drop: float,
    concurrency: int,
    k: int,
    scoring: _Scoring | None = None,
) -> int:
    from groundgate.container import Container
    from groundgate.evals.app_answerer import AppAnswerer
    from groundgate.evals.runner import eval_command

    runtime = Container(settings)
    await runtime.start()
    try:
        code = await eval_command(
            dataset,
            AppAnswerer(runtime, app_name),
            app=app_name,
            out=report,
            baseline=baseline,
            max_drop=max_drop,
            concurrency=concurrency,
            k=k,
            console=out,
            scorers=scoring.build(runtime) if scoring is not None else (),
        )
        summary = scoring.summary() if scoring is not None else None
        if summary is not None:
            out.print(escape(summary), highlight=False)
        return code
    finally:
        await runtime.stop()


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
