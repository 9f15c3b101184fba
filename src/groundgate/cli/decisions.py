"""What the commands over things that wait for a human (``runs``, ``review``) share: their
options, a listing (JSON, or a table keyed by id), one item shown as JSON, and the report of a
decision. Each command keeps what is its own: the columns, the service it asks, the wording.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from groundgate.errors import NotFound

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
NoteOption = Annotated[str | None, typer.Option("--note", help="A note kept with the decision.")]

View = dict[str, Any]
T = TypeVar("T")

err = Console(stderr=True)
out = Console()


def when(ts: float | None) -> str:
    """A Unix time as UTC to the second; "-" for none."""
    return "-" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def found(item: T | None, kind: str, item_id: str, tenant: str) -> T:
    """``item``, which the store found; NotFound (exit 1) when it did not."""
    if item is None:
        # The id is the caller's input: cut it so a pasted blob does not fill the terminal.
        raise NotFound(f"No {kind} with id '{item_id[:64]}' in tenant '{tenant}'.")
    return item


def print_list(
    views: Sequence[View],
    as_json: bool,
    *,
    id_width: int,
    columns: Sequence[str],
    cells: Callable[[View], Sequence[str]],
) -> None:
    """``{"object": "list", "data": views}`` with ``--json``; else a table: the whole id first
    (``show`` and the decisions take it), then ``columns``, whose ``cells`` fold."""
    if as_json:
        typer.echo(json.dumps({"object": "list", "data": list(views)}))
        return
    table = Table()
    table.add_column("id", no_wrap=True, min_width=id_width)
    for column in columns:
        table.add_column(column, overflow="fold")
    for view in views:
        table.add_row(view["id"], *cells(view))
    out.print(table)


def print_one(view: View) -> None:
    """One item in full, as indented JSON (text as it is, not escaped)."""
    typer.echo(json.dumps(view, indent=2, ensure_ascii=False))


def print_decision(view: View, as_json: bool, summary: str, answer: str | None = None) -> None:
    """The decided item as JSON with ``--json``; else ``summary`` on stderr and the ``answer``
    (if any) on stdout, so that it can be piped on its own."""
    if as_json:
        typer.echo(json.dumps(view))
        return
    err.print(summary, highlight=False)
    if answer:
        out.print(answer, highlight=False, soft_wrap=True)
