"""``groundgate prompts``: the prompt registry (the configured prompt files, with the labels
and used versions of the configured store).

``promote`` moves a label for every process that reads this store: a running gateway sees it
within ``[prompts] label_refresh_s``. It is audited as made by ``cli:USER``. With ``--json``
every command prints one JSON object, errors included.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from groundgate.cli.on_store import run_on_store
from groundgate.config import Settings
from groundgate.config_prompts import PromptRef, parse_ref
from groundgate.errors import InvalidRequest
from groundgate.prompts.registry import PromptRegistry
from groundgate.prompts.views import (
    content_diff,
    move_view,
    prompts_list,
    version_view,
)
from groundgate.store import Store

out = Console(highlight=False)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _run(settings: Settings, action: Callable[[PromptRegistry], Awaitable[T]], as_json: bool) -> T:
    """Run ``action`` on the registry; a GroundgateError exits 2 (bad input) or 1."""

    async def on_store(store: Store) -> T:
        return await action(PromptRegistry.load(settings.prompts, store.prompts))

    return run_on_store(settings, on_store, as_json)


def _ref(text: str) -> PromptRef:
    """``NAME`` or ``NAME@REF``, parsed; InvalidRequest (exit 2) when it is not one."""
    try:
        return parse_ref(text)
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="ref") from None


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _who() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no user name (some containers)
        return "cli"


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``prompts``; ``load`` reads the config and exits cleanly if it is wrong."""
    prompts_app = typer.Typer(help="Versioned prompts and their labels.", no_args_is_help=True)
    app.add_typer(prompts_app, name="prompts")

    @prompts_app.command("list")
    def list_(as_json: JsonOption = False, config: ConfigOption = None) -> None:
        """Every prompt: versions, labels, tokens per version, used versions."""
        settings = load(config)

        async def action(registry: PromptRegistry) -> dict[str, Any]:
            changed = [c.problem() for c in await registry.changed_versions()]
            return {"data": await prompts_list(registry), "refused": changed}

        result = _run(settings, action, as_json)
        if as_json:
            typer.echo(json.dumps(result))
            return
        table = Table("prompt", "versions", "labels", "tokens", "used")
        for row in result["data"]:
            labels = ", ".join(f"{lab}→{v}" for lab, v in sorted(row["labels"].items()))
            tokens = ", ".join(f"@{v}: {n}" for v, n in row["tokens"].items())
            used = ", ".join(map(str, row["used"])) or "-"
            if row["changed"]:
                used += " [red](changed: " + ", ".join(map(str, row["changed"])) + ")[/red]"
            versions = ", ".join(map(str, row["versions"]))
            table.add_row(escape(row["name"]), versions, labels or "-", tokens, used)
        out.print(table)
        for problem in result["refused"]:
            out.print(f"[red]refused:[/red] {escape(problem)}")

    @prompts_app.command("show")
    def show(
        ref: Annotated[str, typer.Argument(metavar="NAME[@REF]", help="name, name@N, name@label")],
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """One version: its content, and its messages with the placeholders it fills."""
        settings = load(config)

        async def action(registry: PromptRegistry) -> dict[str, Any]:
            version = await registry.lookup(_ref(ref))
            return version_view(registry, version)

        view = _run(settings, action, as_json)
        if as_json:
            typer.echo(json.dumps(view))
            return
        out.print(f"[bold]{escape(view['ref'])}[/bold]  {view['tokens']} tokens  {view['digest']}")
        if view["description"]:
            out.print(escape(view["description"]))
        if view["variables"]:
            out.print("variables:")
            for name, var in view["variables"].items():
                need = "required" if var["required"] else f"default {var['default']!r}"
                out.print(f"  {escape(name)}: {var['type']}, {escape(need)}")
        for message in view["rendered"]:
            out.print(f"[cyan]{message['role']}:[/cyan]")
            out.print(escape(message["content"]))
        if view["output_schema"] is not None:
            out.print("output schema: " + escape(json.dumps(view["output_schema"])))

    @prompts_app.command("diff")
    def diff(
        a: Annotated[str, typer.Argument(metavar="NAME@A")],
        b: Annotated[str, typer.Argument(metavar="NAME@B")],
        config: ConfigOption = None,
    ) -> None:
        """A unified diff of two versions' content (labels allowed: name@production)."""
        settings = load(config)

        async def action(registry: PromptRegistry) -> str:
            first = await registry.lookup(_ref(a))
            second = await registry.lookup(_ref(b))
            return content_diff(first, second)

        text = _run(settings, action, False)
        typer.echo(text or "(no difference)", nl=not text)

    @prompts_app.command("promote")
    def promote(
        ref: Annotated[str, typer.Argument(metavar="NAME@V", help="The version to point at.")],
        label: Annotated[str, typer.Option("--label", help="e.g. production, staging.")],
        note: Annotated[str | None, typer.Option("--note", help="Why (kept in the audit).")] = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Point a label at a version (audited); gateways see it within label_refresh_s."""
        settings = load(config)

        async def action(registry: PromptRegistry) -> dict[str, Any]:
            parsed = _ref(ref)
            if parsed.version is None:
                raise InvalidRequest(f"{ref!r}: promote a version, NAME@N", param="ref")
            move = await registry.promote(
                parsed.name,
                parsed.version,
                label,
                moved_by=_who(),
                tenant=None,
                key_id=None,
                note=note,
            )
            return move_view(move)

        move = _run(settings, action, as_json)
        if as_json:
            typer.echo(json.dumps(move))
            return
        before = "unset" if move["from_version"] is None else str(move["from_version"])
        moved = f"{move['name']} {move['label']}: {before} -> {move['to_version']}"
        out.print(escape(moved))

    @prompts_app.command("history")
    def history(
        name: Annotated[str, typer.Argument(metavar="NAME")],
        limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Every move of the prompt's labels, newest first."""
        settings = load(config)

        async def action(registry: PromptRegistry) -> list[dict[str, Any]]:
            return [move_view(m) for m in await registry.history(name, limit=limit)]

        moves = _run(settings, action, as_json)
        if as_json:
            typer.echo(json.dumps({"data": moves}))
            return
        table = Table("when (UTC)", "label", "from", "to", "by", "tenant", "note")
        for m in moves:
            before = "-" if m["from_version"] is None else str(m["from_version"])
            table.add_row(
                _when(m["moved_at"]),
                escape(m["label"]),
                before,
                str(m["to_version"]),
                escape(m["moved_by"]),
                escape(m["tenant"] or "-"),
                escape(m["note"] or ""),
            )
        out.print(table)
