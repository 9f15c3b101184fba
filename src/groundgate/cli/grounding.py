"""``groundgate ingest``: knowledge bases from the command line."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from groundgate.config import Settings

err = Console(stderr=True)
out = Console()

SAMPLE_KB = "groundgate-docs"


def sample_docs_path() -> Path:
    """Groundgate's own documentation, shipped in the package as the sample knowledge base."""
    return Path(str(resources.files("groundgate").joinpath("sample_docs")))


async def run_ingest(
    settings: Settings, path: Path, kb: str, *, tenant: str = "default", quiet: bool = False
) -> int:
    from groundgate.container import Container
    from groundgate.retrieval.documents import check_kb_name
    from groundgate.retrieval.loaders import load_path

    check_kb_name(kb)
    docs, failures = await asyncio.to_thread(load_path, path)
    runtime = Container(settings)
    await runtime.start()
    counts = {"added": 0, "updated": 0, "unchanged": 0, "failed": 0}
    failed_docs: list[tuple[str, str]] = []
    try:
        with Progress(
            TextColumn("[bold]ingest[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            disable=quiet,
        ) as bar:
            task = bar.add_task(kb, total=len(docs))

            def tick(result: object) -> None:
                status = getattr(result, "status", "failed")
                counts[status] = counts.get(status, 0) + 1
                if status == "failed":
                    failed_docs.append(
                        (getattr(result, "doc_id", "?"), getattr(result, "error", "") or "failed")
                    )
                bar.advance(task)

            await runtime.ingestor(kb).ingest(tenant, kb, docs, progress=tick)
    finally:
        await runtime.stop()
    for failure in failures:
        err.print(f"[yellow]skipped[/yellow] {failure.path}: {failure.reason}", highlight=False)
    for doc_id, reason in failed_docs:
        err.print(f"[yellow]failed[/yellow] {doc_id}: {reason}", highlight=False)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if not quiet or failures or failed_docs:
        err.print(
            f"{kb}: {summary or 'nothing to ingest'}"
            + (f"; {len(failures)} files skipped" if failures else ""),
            highlight=False,
        )
    return 1 if failures or failed_docs else 0


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add the commands; ``load`` reads the config and exits cleanly if it is wrong."""

    @app.command()
    def ingest(
        path: Annotated[Path | None, typer.Argument(help="A file or folder (recursive).")] = None,
        kb: Annotated[str, typer.Option("--kb", help="Knowledge base name.")] = SAMPLE_KB,
        sample: Annotated[bool, typer.Option(help="Ingest the bundled Groundgate docs.")] = False,
        config: Annotated[
            Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    ) -> None:
        """Load documents into a knowledge base. Unchanged documents are skipped; files that
        cannot be read are reported by name and the rest still land (exit code 1 if any)."""
        if sample:
            path = sample_docs_path()
        if path is None:
            err.print("[red]error:[/red] give a PATH or --sample")
            raise typer.Exit(2)
        if not path.exists():
            err.print(f"[red]error:[/red] {path} does not exist")
            raise typer.Exit(2)
        settings = load(config)
        raise typer.Exit(asyncio.run(run_ingest(settings, path, kb, quiet=quiet)))
