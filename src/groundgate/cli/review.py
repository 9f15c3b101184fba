"""``groundgate review``: the human review queue, straight from the configured store.

Whoever can run this can read the store, so it acts as a reviewer of any tenant it names
(``--tenant``, default "default"); decisions are recorded as made by "cli". ``export`` writes
the decided reviews as an eval dataset (``groundgate eval`` reads it): an approved answer, or
a reviewer's correction, is the expected answer, and ``label`` keeps the decision.
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
    err,
    found,
    print_decision,
    print_list,
    print_one,
    when,
)
from groundgate.cli.on_store import fail, run_on_store
from groundgate.config import Settings
from groundgate.errors import InvalidRequest
from groundgate.guards.review_queue import ReviewQueue
from groundgate.observe.feedback import FeedbackRecorder

T = TypeVar("T")

TenantOption = Annotated[str, typer.Option("--tenant", help="The tenant whose queue this is.")]
IdArgument = Annotated[str, typer.Argument(metavar="ID", help="The review's id (rev_...).")]
Correction = Annotated[
    str | None, typer.Option("--correct", help="The answer it should have been.")
]
Status = Literal["pending", "approved", "rejected"]


def _run(settings: Settings, action: Callable[[ReviewQueue], Awaitable[T]], as_json: bool) -> T:
    """Run ``action`` on the store's review queue; a GroundgateError exits 2 (bad input) or 1."""
    # Decisions made here are feedback too, as the gateway's are.
    return run_on_store(
        settings,
        lambda store: action(ReviewQueue(store.reviews, feedback=FeedbackRecorder(store.feedback))),
        as_json,
    )


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``review``; ``load`` reads the config and exits cleanly if it is wrong."""
    from groundgate.guards.review_views import eval_case, review_view

    review_app = typer.Typer(help="The human review queue.", no_args_is_help=True)
    app.add_typer(review_app, name="review")

    @review_app.command("list")
    def list_(
        tenant: TenantOption = "default",
        status: Annotated[Status, typer.Option(help="Only these.")] = "pending",
        all_: Annotated[bool, typer.Option("--all", help="Every status.")] = False,
        target: Annotated[str | None, typer.Option(help="Only this app or model.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """List reviews, newest first: pending ones, unless --status or --all."""
        settings = load(config)

        async def action(queue: ReviewQueue) -> list[dict[str, Any]]:
            only = None if all_ else status
            page = await queue.page(tenant, status=only, target=target, limit=limit)
            return [review_view(r, reviewer=True) for r in page.reviews]

        print_list(
            _run(settings, action, as_json),
            as_json,
            id_width=28,
            columns=("status", "mode", "target", "reasons", "created"),
            cells=lambda v: (
                v["status"],
                v["mode"],
                v["target"],
                ",".join(v["reasons"]),
                when(v["created_at"]),
            ),
        )

    @review_app.command("show")
    def show(
        review_id: IdArgument,
        tenant: TenantOption = "default",
        config: ConfigOption = None,
    ) -> None:
        """Print one review (request, answer, guards, decision) as JSON."""
        settings = load(config)

        async def action(queue: ReviewQueue) -> dict[str, Any]:
            review = found(await queue.get(tenant, review_id), "review", review_id, tenant)
            return review_view(review, reviewer=True)

        print_one(_run(settings, action, True))

    def decide(
        review_id: str,
        tenant: str,
        note: str | None,
        as_json: bool,
        config: Path | None,
        *,
        approve: bool,
        correct: str | None,
    ) -> None:
        settings = load(config)
        if correct is not None and not correct.strip():
            fail(InvalidRequest("--correct must not be empty."), as_json)

        async def action(queue: ReviewQueue) -> dict[str, Any]:
            decided = await queue.decide(
                tenant, review_id, approve=approve, by="cli", corrected_answer=correct, note=note
            )
            return review_view(decided, reviewer=True)

        view = _run(settings, action, as_json)
        print_decision(view, as_json, f"Review {review_id} {view['status']}.")

    @review_app.command("approve")
    def approve(
        review_id: IdArgument,
        tenant: TenantOption = "default",
        correct: Correction = None,
        note: NoteOption = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Approve: a held answer (or the correction) becomes the client's answer."""
        decide(review_id, tenant, note, as_json, config, approve=True, correct=correct)

    @review_app.command("reject")
    def reject(
        review_id: IdArgument,
        tenant: TenantOption = "default",
        correct: Correction = None,
        note: NoteOption = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Reject: a held answer is never given out; a correction still labels the example."""
        decide(review_id, tenant, note, as_json, config, approve=False, correct=correct)

    @review_app.command("export")
    def export(
        out_path: Annotated[Path, typer.Argument(metavar="OUT", dir_okay=False, help="JSONL.")],
        tenant: TenantOption = "default",
        target: Annotated[str | None, typer.Option(help="Only this app or model.")] = None,
        as_json: JsonOption = False,
        config: ConfigOption = None,
    ) -> None:
        """Write the decided reviews as an eval dataset (JSONL, `groundgate eval` reads it)."""
        settings = load(config)

        async def action(queue: ReviewQueue) -> tuple[list[dict[str, Any]], int]:
            decided = await queue.decided(tenant, target)
            cases = [eval_case(r, grounded=r.target in settings.apps) for r in decided]
            kept = [case for case in cases if case is not None]
            return kept, len(decided) - len(kept)

        cases, skipped = _run(settings, action, as_json)
        lines = "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)
        out_path.write_text(lines, encoding="utf-8")
        if as_json:
            summary = {"object": "export", "path": str(out_path), "cases": len(cases)}
            typer.echo(json.dumps({**summary, "skipped": skipped}))
        else:
            err.print(
                f"Wrote {len(cases)} cases to {out_path} ({skipped} decided reviews had no "
                "expected answer: rejected without a correction, or no question in text).",
                highlight=False,
            )
