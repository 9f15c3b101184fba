"""``groundgate datasets``: eval datasets made from what the gateway recorded, straight from the
configured store.

``export --feedback OUT`` writes the feedback given on a tenant's answers (end users' and
reviewers') as a JSONL eval dataset that ``groundgate eval`` reads (``evals/feedback_export.py``
says what a case holds and which traces make none).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from groundgate.config import Settings
from groundgate.evals.feedback_export import FeedbackExport, export_feedback

err = Console(stderr=True)


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``datasets``; ``load`` reads the config and exits cleanly if it is wrong."""
    from groundgate.cli.report import parse_duration

    datasets_app = typer.Typer(help="Eval datasets from recorded traffic.", no_args_is_help=True)
    app.add_typer(datasets_app, name="datasets")

    @datasets_app.command("export")
    def export(
        feedback: Annotated[
            Path,
            typer.Option(
                "--feedback",
                metavar="OUT",
                dir_okay=False,
                help="Write the feedback given on answers here, as an eval dataset (JSONL).",
            ),
        ],
        min_score: Annotated[
            float | None,
            typer.Option(min=0.0, max=1.0, help="Only answers whose mean score is at least this."),
        ] = None,
        target: Annotated[str | None, typer.Option(help="Only this app or model.")] = None,
        since: Annotated[
            str | None, typer.Option(help="Only feedback given since: 30m, 24h, 7d, ...")
        ] = None,
        tenant: Annotated[str, typer.Option(help="The tenant whose feedback this is.")] = (
            "default"
        ),
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
    ) -> None:
        """Write feedback on answers as an eval dataset that `groundgate eval` reads."""
        settings = load(config)
        start: float | None = None
        if since is not None:
            try:
                start = time.time() - parse_duration(since)
            except ValueError as exc:
                err.print(f"[red]error:[/red] --since: {exc}", highlight=False)
                raise typer.Exit(2) from None
        result = asyncio.run(_export(settings, tenant, target, start, min_score))
        lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in result.cases)
        feedback.write_text(lines, encoding="utf-8")
        skipped = dict(sorted(result.skipped.items()))
        if as_json:
            summary = {"object": "export", "path": str(feedback), "cases": len(result.cases)}
            typer.echo(json.dumps({**summary, "skipped": skipped}))
            return
        why = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in skipped.items())
        err.print(
            f"Wrote {len(result.cases)} cases to {feedback}"
            + (f" (skipped: {why})." if why else "."),
            highlight=False,
        )


async def _export(
    settings: Settings,
    tenant: str,
    target: str | None,
    since: float | None,
    min_score: float | None,
) -> FeedbackExport:
    from groundgate.store import opened_store

    async with opened_store(settings.store) as store:
        return await export_feedback(store, tenant, target=target, since=since, min_score=min_score)
