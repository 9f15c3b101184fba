"""``groundgate keys``: API keys and tenants, written straight to the configured store.

Whoever can run this can read the store, so it acts as the bootstrap admin: no grant checks,
only the same validation as the admin API. A created key is printed once, alone on stdout
(``KEY=$(groundgate keys create ...)`` works); with ``--json`` every command prints exactly
one JSON object, errors included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from groundgate.cli.on_store import fail, run_on_store
from groundgate.config import Settings
from groundgate.errors import GroundgateError
from groundgate.store.keys import KeyStore

err = Console(stderr=True)
out = Console()
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="Config file.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
Rpm = Annotated[int | None, typer.Option("--rpm", help="Requests per minute.")]
Tpm = Annotated[int | None, typer.Option("--tpm", help="Tokens per minute.")]
Concurrent = Annotated[int | None, typer.Option("--concurrent", help="Requests in flight.")]
Daily = Annotated[float | None, typer.Option("--daily-budget", help="USD per day.")]
Monthly = Annotated[float | None, typer.Option("--monthly-budget", help="USD per month.")]
Tools = Annotated[
    str | None,
    typer.Option(
        "--tools",
        help="Agent tools, comma-separated: tool names, SERVER__TOOL, mcp:SERVER "
        "(default: all; '' for none).",
    ),
]


def _tool_list(tools: str | None) -> dict[str, Any]:
    """``--tools a, b`` as the request field (absent: every tool)."""
    if tools is None:
        return {}
    return {"tools": [t.strip() for t in tools.split(",") if t.strip()]}


def _limits(
    rpm: int | None,
    tpm: int | None,
    concurrent: int | None,
    daily: float | None,
    monthly: float | None,
) -> dict[str, Any]:
    values = {
        "requests_per_minute": rpm,
        "tokens_per_minute": tpm,
        "concurrent": concurrent,
        "daily_budget_usd": daily,
        "monthly_budget_usd": monthly,
    }
    return {k: v for k, v in values.items() if v is not None}


def _run(settings: Settings, action: Callable[[KeyStore], Awaitable[T]], as_json: bool) -> T:
    """Run ``action`` on the store's keys; a GroundgateError exits 2 (bad input) or 1."""
    return run_on_store(settings, lambda store: action(store.keys), as_json)


def _print_json(value: dict[str, Any]) -> None:
    typer.echo(json.dumps(value))


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``keys`` (and ``keys tenants``); ``load`` reads the config and exits cleanly if it is
    wrong."""
    keys_app = typer.Typer(help="API keys, in the configured store.", no_args_is_help=True)
    tenants_app = typer.Typer(
        help="Tenants: the limits, budgets and tools all their keys share.",
        no_args_is_help=True,
    )
    keys_app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")

    @keys_app.command("create")
    def create(
        tenant: Annotated[str, typer.Option(help="Tenant (created if new, with no limits).")],
        name: Annotated[str, typer.Option(help="A label for the key.")],
        scope: Annotated[
            list[str] | None,
            typer.Option(
                "--scope",
                help="chat, embeddings, ingest, metrics, review, feedback, admin (repeat).",
            ),
        ] = None,
        model: Annotated[
            list[str] | None, typer.Option("--model", help="Allowed model or app (repeat).")
        ] = None,
        rpm: Rpm = None,
        tpm: Tpm = None,
        concurrent: Concurrent = None,
        daily_budget: Daily = None,
        monthly_budget: Monthly = None,
        max_tokens: Annotated[
            int | None, typer.Option("--max-tokens", help="Cap on max_tokens per request.")
        ] = None,
        expires_in_days: Annotated[
            float | None, typer.Option("--expires-in-days", help="Expire after this long.")
        ] = None,
        tools: Tools = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Create a key and print it. It is shown once: store it now."""
        from groundgate.gateway.grants import check_tenant_tools, principal_for
        from groundgate.gateway.key_admin import CreateKey, key_view, new_key
        from groundgate.validation import validate

        data: dict[str, Any] = {"tenant": tenant, "name": name}
        data.update(_limits(rpm, tpm, concurrent, daily_budget, monthly_budget))
        extras = {"scopes": scope, "models": model, "max_tokens": max_tokens}
        data.update({k: v for k, v in extras.items() if v is not None})
        data.update(_tool_list(tools))  # within the tenant's: checked when it is stored
        if expires_in_days is not None:
            data["expires_in_s"] = expires_in_days * 86400.0
        settings = load(config)
        now = time.time()
        try:
            full_key, record = new_key(validate(CreateKey, data), tenant, now)
        except GroundgateError as exc:
            fail(exc, as_json)

        async def action(keys: KeyStore) -> dict[str, Any]:
            check_tenant_tools(principal_for(record, await keys.get_tenant(record.tenant)))
            await keys.create_key(record)
            return {"key": full_key, **key_view(record, now)}

        created = _run(settings, action, as_json)
        if as_json:
            _print_json(created)
            return
        err.print(
            f"Created key [bold]{created['id']}[/bold] ({created['name']}) for tenant "
            f"{created['tenant']}, scopes {', '.join(created['scopes'])}. "
            "It is shown once: store it now.",
            highlight=False,
        )
        typer.echo(created["key"])

    @keys_app.command("list")
    def list_(
        tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """List keys, newest first (never their secrets)."""
        from groundgate.gateway.key_admin import key_view

        settings = load(config)

        async def action(keys: KeyStore) -> list[dict[str, Any]]:
            now = time.time()
            return [key_view(k, now) for k in await keys.list_keys(tenant)]

        views = _run(settings, action, as_json)
        if as_json:
            _print_json({"object": "list", "data": views})
            return
        table = Table()
        table.add_column("id", no_wrap=True, min_width=12)  # whole: `revoke` needs it
        for column in ("tenant", "name", "status", "scopes", "created", "expires"):
            table.add_column(column, overflow="fold")
        for v in views:
            table.add_row(
                v["id"],
                v["tenant"],
                v["name"],
                v["status"],
                ",".join(v["scopes"]),
                _when(v["created_at"]),
                _when(v["expires_at"]),
            )
        out.print(table)

    @keys_app.command("revoke")
    def revoke(
        key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id.")],
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Revoke a key; the gateway refuses it from the next request on."""
        from groundgate.errors import NotFound
        from groundgate.gateway.keys import is_key_id

        settings = load(config)

        async def action(keys: KeyStore) -> None:
            if not is_key_id(key_id) or not await keys.revoke_key(key_id):
                raise NotFound(f"No API key with id '{key_id[:64]}'.")

        _run(settings, action, as_json)
        if as_json:
            _print_json({"object": "api_key.revoked", "id": key_id, "revoked": True})
        else:
            err.print(f"Revoked key {key_id}.", highlight=False)

    @tenants_app.command("set")
    def tenants_set(
        name: Annotated[str, typer.Argument(help="Tenant name.")],
        rpm: Rpm = None,
        tpm: Tpm = None,
        concurrent: Concurrent = None,
        daily_budget: Daily = None,
        monthly_budget: Monthly = None,
        tools: Tools = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Create a tenant or replace its limits, budgets and tools (an option left out: no
        limit). Its keys may call only the tools it may (each within its own list too)."""
        from groundgate.gateway.key_admin import TenantBody, tenant_record, tenant_view
        from groundgate.validation import validate

        data = {"name": name, **_limits(rpm, tpm, concurrent, daily_budget, monthly_budget)}
        data.update(_tool_list(tools))
        settings = load(config)
        try:
            record = tenant_record(validate(TenantBody, data), time.time())
        except GroundgateError as exc:
            fail(exc, as_json)

        async def action(keys: KeyStore) -> dict[str, Any]:
            return tenant_view(await keys.upsert_tenant(record))

        view = _run(settings, action, as_json)
        if as_json:
            _print_json(view)
        else:
            err.print(f"Tenant {name} saved.", highlight=False)

    @tenants_app.command("list")
    def tenants_list(as_json: JsonOption = False, config: ConfigOption = None) -> None:
        """List tenants, their limits and tools."""
        from groundgate.gateway.key_admin import tenant_view

        settings = load(config)

        async def action(keys: KeyStore) -> list[dict[str, Any]]:
            return [tenant_view(t) for t in await keys.list_tenants()]

        views = _run(settings, action, as_json)
        if as_json:
            _print_json({"object": "list", "data": views})
            return
        columns = ["requests_per_minute", "tokens_per_minute", "concurrent"]
        budgets = ["daily_budget_usd", "monthly_budget_usd"]
        table = Table("name", "rpm", "tpm", "concurrent", "daily $", "monthly $", "tools")
        for v in views:
            cells = [v["name"], *(_cell(v[c]) for c in columns + budgets)]
            tools = "all" if v["tools"] is None else ",".join(v["tools"]) or "none"
            table.add_row(*cells, tools)
        out.print(table)

    @tenants_app.command("delete")
    def tenants_delete(
        name: Annotated[str, typer.Argument(help="Tenant name.")],
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Delete a tenant that has no active keys (revoke them first)."""
        from groundgate.errors import NotFound

        settings = load(config)

        async def action(keys: KeyStore) -> None:
            if not await keys.delete_tenant(name):
                raise NotFound(f"No tenant named '{name}'.")

        _run(settings, action, as_json)
        if as_json:
            _print_json({"object": "tenant.deleted", "name": name, "deleted": True})
        else:
            err.print(f"Deleted tenant {name}.", highlight=False)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)
