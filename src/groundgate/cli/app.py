"""The ``groundgate`` command: its root, the shared options, and ``serve | prune | config
check``; the other commands register themselves on it (ask, grounding, keys)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from groundgate.config import CONFIG_ENV_VAR, Settings, load_settings
from groundgate.errors import ConfigError, GroundgateError

app = typer.Typer(
    help="Groundgate: a production GenAI gateway.", no_args_is_help=True, add_completion=False
)
config_app = typer.Typer(help="Inspect and validate configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
# prometheus-client's multiprocess folder (observe/metrics.py reads it too).
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
err = Console(stderr=True)
out = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"Config file (default: ${CONFIG_ENV_VAR}, else the embedded defaults).",
        dir_okay=False,
    ),
]


def load_or_exit(path: Path | None) -> Settings:
    """The settings, or exit 2 with the config error on stderr."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(2) from None


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Port.")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes.")] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
) -> None:
    """Start the HTTP server."""
    import uvicorn

    from groundgate._malloc import limit_malloc_arenas

    limit_malloc_arenas()  # before any thread starts

    from groundgate.observe.logging import configure_logging

    settings = load_or_exit(config)
    host = host or settings.server.host
    port = settings.server.port if port is None else port
    workers = workers or settings.server.workers
    # The app checks the address it is really bound to (keys are required off loopback).
    settings = settings.model_copy(
        update={"server": settings.server.model_copy(update={"host": host, "port": port})}
    )
    os.environ["GROUNDGATE_SERVER__HOST"] = host
    log_level = settings.logging.level_or(settings.server.log_level)
    configure_logging(log_level, settings.logging.format)
    if config is not None:
        # Worker processes re-load the settings from the environment.
        os.environ[CONFIG_ENV_VAR] = str(config.resolve())
    # Several workers each build their own app from the environment; one worker gets the
    # app built here, so a config problem shows before anything binds.
    target: Any = "groundgate.api.app:create_app_from_env"
    with _metrics_folder(workers):
        if workers == 1:
            from groundgate.api.app import create_app

            target = create_app(settings)
        uvicorn.run(
            target,
            factory=workers > 1,
            workers=workers,
            host=host,
            port=port,
            access_log=access_log,
            log_config=None,
            loop="uvloop",
            http="httptools",
            timeout_graceful_shutdown=10,
            log_level=log_level,
        )


@contextlib.contextmanager
def _metrics_folder(workers: int) -> Iterator[None]:
    """Workers share one port, so a scrape reaches any one of them: they keep their metrics in
    a fresh folder (prometheus-client's multiprocess mode), set before any of them starts and
    removed when the server stops. One process keeps them in memory (faster). The variable
    is read when prometheus-client is first imported, so this runs before that."""
    if workers == 1:
        os.environ.pop(_MULTIPROC_ENV, None)
        yield
        return
    folder = tempfile.mkdtemp(prefix="groundgate-metrics-")
    os.environ[_MULTIPROC_ENV] = folder
    try:
        yield
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    config: ConfigOption = None,
    model: Annotated[str, typer.Option(help="Model to ask.")] = "local",
    context: Annotated[
        str | None,
        typer.Option(help="Context to answer from: text, or @path to read a file."),
    ] = None,
    stream: Annotated[bool, typer.Option(help="Print the answer as it arrives.")] = False,
) -> None:
    """Ask one question in-process (no server needed) and print the answer and its trace id."""
    settings = load_or_exit(config)
    context_text = _read_context(context)
    try:
        from groundgate.cli.ask import ask_in_process

        asyncio.run(ask_in_process(settings, question, model, context_text, stream))
    except GroundgateError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None


def _read_context(context: str | None) -> str | None:
    if context is None or not context.startswith("@"):
        return context
    try:
        return Path(context[1:]).read_text("utf-8")
    except OSError as exc:
        err.print(f"[red]error:[/red] cannot read {context[1:]}: {exc.strerror}")
        raise typer.Exit(2) from None


@app.command()
def prune(config: ConfigOption = None) -> None:
    """Apply [retention] now: delete old traces, cached vectors, feedback, finished agent runs,
    decided reviews and eval runs (the server also does this in the background, every
    retention.interval_s)."""
    settings = load_or_exit(config)
    try:
        deleted = asyncio.run(_prune(settings))
    except GroundgateError as exc:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
        raise typer.Exit(1) from None
    # One line, never wrapped: scripts read it.
    out.print(", ".join(f"{n} {kind}" for kind, n in deleted.items()) + " deleted", soft_wrap=True)


async def _prune(settings: Settings) -> dict[str, int]:
    from groundgate.store import opened_store
    from groundgate.store.pruner import Pruner

    async with opened_store(settings.store) as store:
        deleted = await Pruner(store.retention, settings.retention).run_once()
        return {str(kind): n for kind, n in deleted.items()}


@config_app.command("check")
def config_check(
    path: Annotated[
        Path | None,
        typer.Argument(help=f"Config file (default: ${CONFIG_ENV_VAR}).", dir_okay=False),
    ] = None,
) -> None:
    """Validate a config file without starting anything."""
    settings = load_or_exit(path)
    source = path or os.environ.get(CONFIG_ENV_VAR) or "embedded defaults"
    out.print(
        f"[green]ok[/green] {source}: {len(settings.providers)} providers, "
        f"{len(settings.models)} models, {len(settings.embedders)} embedders, "
        f"store {settings.store.type}",
        highlight=False,
    )
