"""``groundgate eval``: run a golden set through an app and gate on the result.

``groundgate eval DATASET --app NAME`` runs (the ``run`` subcommand, the default, so the
command reads as it always has); the other subcommands work on stored runs and reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from groundgate.config import Settings

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
        raise typer.Exit(
            asyncio.run(_eval(settings, dataset, app_name, out, baseline, max_drop, concurrency, k))
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
) -> int:
    from groundgate.container import Container
    from groundgate.evals.app_answerer import AppAnswerer
    from groundgate.evals.runner import eval_command

    runtime = Container(settings)
    await runtime.start()
    try:
        return await eval_command(
            dataset,
            AppAnswerer(runtime, app_name),
            app=app_name,
            out=report,
            baseline=baseline,
            max_drop=max_drop,
            concurrency=concurrency,
            k=k,
            console=out,
        )
    finally:
        await runtime.stop()
