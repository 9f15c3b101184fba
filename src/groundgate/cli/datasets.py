"""``groundgate datasets``: eval datasets made from what the gateway recorded, straight from the
configured store.

``export --feedback OUT`` writes the feedback given on a tenant's answers (end users' and
reviewers') as a JSONL eval dataset that ``groundgate eval`` reads (``evals/feedback_export.py``
says what a case holds and which traces make none).

``synth --kb NAME --model MODEL --n N --out FILE`` drafts question/answer cases from a
knowledge base's chunks with a configured model, labelled ``synthetic-draft`` for a person to
review (``evals/synth.py``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from groundgate.config import Settings
from groundgate.evals.feedback_export import FeedbackExport, export_feedback

if TYPE_CHECKING:  # the synthesiser starts a Container: imported when it runs
    from groundgate.evals.synth import SynthResult

err = Console(stderr=True)


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``datasets``; ``load`` reads the config and exits cleanly if it is wrong."""
    from groundgate.cli.report import parse_duration

    datasets_app = typer.Typer(
        help="Eval datasets from recorded traffic, or drafted from a knowledge base.",
        no_args_is_help=True,
    )
    app.add_typer(datasets_app, name="datasets")
    _register_synth(datasets_app, load)

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


def _register_synth(datasets_app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    @datasets_app.command("synth")
    def synth(
        out: Annotated[
            Path, typer.Option("--out", dir_okay=False, help="Write the drafted cases (JSONL).")
        ],
        model: Annotated[str, typer.Option("--model", help="The model that drafts them.")],
        n: Annotated[int, typer.Option("--n", min=1, help="How many cases to draft.")] = 20,
        kb: Annotated[
            str | None, typer.Option("--kb", help="The knowledge base (default: the app's).")
        ] = None,
        app_name: Annotated[
            str | None, typer.Option("--app", help="Take the knowledge base from this app.")
        ] = None,
        seed: Annotated[int | None, typer.Option(help="Sample the same chunks again.")] = None,
        tenant: Annotated[str, typer.Option(help="The knowledge base's tenant.")] = "default",
        concurrency: Annotated[int, typer.Option(min=1, help="Model calls in flight.")] = 4,
        as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
    ) -> None:
        """Draft question/answer/context cases from a knowledge base with a model, labelled
        synthetic-draft: review them before they join a golden set."""
        settings = load(config)
        if app_name is not None and app_name not in settings.apps:
            known = ", ".join(sorted(settings.apps)) or "none"
            err.print(f"[red]error:[/red] --app: no app named {app_name!r} (configured: {known})")
            raise typer.Exit(2)
        name = kb or (settings.apps[app_name].knowledge_base if app_name else None)
        if name is None:
            err.print("[red]error:[/red] name the knowledge base: --kb NAME or --app APP")
            raise typer.Exit(2)
        if model not in settings.models:
            known = ", ".join(sorted(settings.models)) or "none"
            err.print(f"[red]error:[/red] --model: no model named {model!r} (configured: {known})")
            raise typer.Exit(2)
        result = asyncio.run(
            _synth(settings, name, model, n, tenant, seed, concurrency, progress=not as_json)
        )
        if result is None:
            err.print(f"[red]error:[/red] no knowledge base {name!r} for tenant {tenant!r}")
            raise typer.Exit(2)
        lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in result.cases)
        out.write_text(lines, encoding="utf-8")
        skipped = dict(sorted(result.skipped.items()))
        if as_json:
            summary = {"object": "synth", "path": str(out), "cases": len(result.cases)}
            extra = {"cost_usd": result.cost_usd, "upstream_calls": result.upstream_calls}
            typer.echo(
                json.dumps({**summary, "skipped": skipped, **extra, "prompt": result.prompt})
            )
            return
        why = ", ".join(f"{k} {reason.replace('_', ' ')}" for reason, k in skipped.items())
        err.print(
            f"Wrote {len(result.cases)} draft cases to {out} from {result.chunks} chunks of "
            f"{name!r} ({result.prompt}; skipped: {why or 'none'}); "
            f"{result.upstream_calls} model calls, cost ${result.cost_usd:.6f}. "
            "Review them before use: each is labelled synthetic-draft.",
            highlight=False,
        )


async def _synth(
    settings: Settings,
    kb: str,
    model: str,
    n: int,
    tenant: str,
    seed: int | None,
    concurrency: int,
    *,
    progress: bool,
) -> SynthResult | None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from groundgate.container import Container
    from groundgate.evals.synth import synthesize

    runtime = Container(settings)
    await runtime.start()
    try:
        if await runtime.store.knowledge.get_kb(tenant, kb) is None:
            return None
        bar = Progress(
            TextColumn("[bold]synth[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[skipped]} skipped"),
            console=err,
            disable=not progress,
        )
        with bar:
            task = bar.add_task("synth", total=n, skipped=0)

            def advance(done: int, skipped: int) -> None:
                bar.update(task, completed=done, skipped=skipped)

            return await synthesize(
                runtime,
                kb,
                model,
                n,
                tenant=tenant,
                seed=seed,
                concurrency=concurrency,
                on_progress=advance,
            )
    finally:
        await runtime.stop()


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
