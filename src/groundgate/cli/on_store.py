"""What the store-backed commands (``keys``, ``tenants``, ``review``, ``runs``) share: run one
action on the configured store, and report a refused one the same way (as JSON with
``--json``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from groundgate.config import Settings
from groundgate.errors import GroundgateError, InvalidRequest
from groundgate.store import Store, opened_store

T = TypeVar("T")
err = Console(stderr=True)


def run_on_store(settings: Settings, action: Callable[[Store], Awaitable[T]], as_json: bool) -> T:
    """Run ``action`` on the opened store; a GroundgateError exits 2 (bad input) or 1."""

    async def main() -> T:
        async with opened_store(settings.store) as store:
            return await action(store)

    return run_or_fail(main(), as_json)


def run_or_fail(main: Coroutine[Any, Any, T], as_json: bool) -> T:
    """Run ``main`` to its end; a GroundgateError exits 2 (bad input) or 1."""
    try:
        return asyncio.run(main)
    except GroundgateError as exc:
        fail(exc, as_json)


def fail(exc: GroundgateError, as_json: bool) -> NoReturn:
    """Report the error (as JSON with ``--json``); exit 2 for bad input, else 1."""
    if as_json:
        typer.echo(json.dumps({"error": {"message": exc.message, "code": exc.code}}))
    else:
        err.print(f"[red]error:[/red] {exc.message}", highlight=False)
    raise typer.Exit(2 if isinstance(exc, InvalidRequest) else 1)
