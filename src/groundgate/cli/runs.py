"""``groundgate runs``: agent runs, straight from the configured store.

Whoever can run this can read the store, so it acts as an approver of any tenant it names
(``--tenant``, default "default"); decisions are recorded as made by "cli". ``list`` and
``show`` read the store; ``approve`` and ``reject`` resume the run here, in this process, as
the gateway would (the model and the tools are called from here), and print it as it then
stands: its final answer, or its next pause.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from groundgate.cli.decisions import (
    ConfigOption,
    JsonOption,
    NoteOption,
    found,
    print_decision,
    print_list,
    print_one,
    when,
)
from groundgate.cli.on_store import fail, run_or_fail
from groundgate.config import Settings
from groundgate.errors import InvalidRequest

T = TypeVar("T")

TenantOption = Annotated[str, typer.Option("--tenant", help="The tenant whose runs these are.")]
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The run's id (run_...).")]
Status = Literal["running", "pending_approval", "completed", "stopped", "failed", "expired"]


def _in_gateway(settings: Settings, action: Callable[[Any], Awaitable[T]], as_json: bool) -> T:
    """Run ``action`` on the agent runs service of a Container built here."""
    from groundgate.container import Container

    async def main() -> T:
        runtime = Container(settings)
        await runtime.start()
        try:
            return await action(runtime.agents)
        finally:
            await runtime.stop()

    return run_or_fail(main(), as_json)


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``runs``; ``load`` reads the config and exits cleanly if it is wrong."""
    from groundgate.agents.views import run_view
    from groundgate.store.runs import ApprovalDecision

    runs_app = typer.Typer(help="Agent runs and their approvals.", no_args_is_help=True)
    app.add_typer(runs_app, name="runs")

    @runs_app.command("list")
    def list_(
        tenant: TenantOption = "default",
        status: Annotated[Status | None, typer.Option(help="Only these.")] = None,
        run_app: Annotated[str | None, typer.Option("--app", help="Only this app.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """List runs, newest first."""
        settings = load(config)

        async def action(agents: Any) -> list[dict[str, Any]]:
            runs = await agents.list(tenant, status=status, app=run_app, limit=limit)
            return [run_view(r) for r in runs]

        print_list(
            _in_gateway(settings, action, as_json),
            as_json,
            id_width=30,
            columns=("status", "stop", "app", "steps", "pending", "created"),
            cells=lambda v: (
                v["status"],
                v["stop_reason"] or "-",
                v["app"],
                str(v["usage"]["steps"]),
                ",".join(str(p["name"]) for p in v["pending"]) or "-",
                when(v["created_at"]),
            ),
        )

    @runs_app.command("show")
    def show(
        run_id: IdArgument, tenant: TenantOption = "default", config: ConfigOption = None
    ) -> None:
        """Print one run (state, pending calls, conversation, steps) as JSON."""
        settings = load(config)

        async def action(agents: Any) -> dict[str, Any]:
            run = found(await agents.get(tenant, run_id), "run", run_id, tenant)
            return run_view(run, detail=True)

        print_one(_in_gateway(settings, action, True))

    def decide(
        run_id: str,
        tenant: str,
        note: str | None,
        as_json: bool,
        config: Path | None,
        *,
        approve: bool,
        arguments: str | None = None,
    ) -> None:
        settings = load(config)
        edits: dict[str, dict[str, Any]] | None = None
        if arguments is not None:
            try:
                edits = json.loads(arguments)
            except ValueError:
                edits = None
            if not isinstance(edits, dict) or not all(isinstance(v, dict) for v in edits.values()):
                fail(
                    InvalidRequest('--arguments must be {"CALL_ID": {...}, ...} as JSON.'), as_json
                )
        decision = ApprovalDecision(approve=approve, decided_by="cli", arguments=edits, note=note)

        async def action(agents: Any) -> dict[str, Any]:
            return run_view(await agents.decide(tenant, run_id, decision), detail=True)

        view = _in_gateway(settings, action, as_json)
        summary = f"Run {run_id} {view['status']} ({view['stop_reason'] or '-'})."
        print_decision(view, as_json, summary, view["answer"])

    @runs_app.command("approve")
    def approve(
        run_id: IdArgument,
        tenant: TenantOption = "default",
        arguments: Annotated[
            str | None, typer.Option(help='Edited arguments: {"CALL_ID": {...}} as JSON.')
        ] = None,
        note: NoteOption = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Approve the pending calls and run on to the next stop."""
        decide(run_id, tenant, note, as_json, config, approve=True, arguments=arguments)

    @runs_app.command("reject")
    def reject(
        run_id: IdArgument,
        tenant: TenantOption = "default",
        note: NoteOption = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Refuse the pending calls (the model is told) and run on to the next stop."""
        decide(run_id, tenant, note, as_json, config, approve=False)
