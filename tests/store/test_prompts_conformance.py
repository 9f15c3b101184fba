"""One conformance suite for every PromptStore backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from groundgate.store.base import Store
from groundgate.store.prompts import LabelMove, PromptLabel, UsedVersion


async def test_a_label_moves_and_every_move_is_audited(store: Store) -> None:
    prompts = store.prompts
    assert await prompts.get_label("support", "production") is None
    first = await prompts.move_label(
        "support", "production", 1, at=10.0, moved_by="cli:ana", tenant=None, key_id=None
    )
    assert first == LabelMove("support", "production", None, 1, 10.0, "cli:ana", None, None)
    second = await prompts.move_label(
        "support",
        "production",
        2,
        at=20.0,
        moved_by="key_1",
        tenant="acme",
        key_id="key_1",
        note="better citations",
    )
    assert (second.from_version, second.to_version, second.note) == (1, 2, "better citations")
    await prompts.move_label(
        "support", "staging", 3, at=30.0, moved_by="admin", tenant="default", key_id=None
    )
    await prompts.move_label(
        "other", "production", 1, at=5.0, moved_by="x", tenant=None, key_id=None
    )

    assert await prompts.get_label("support", "production") == PromptLabel(
        "support", "production", 2, 20.0, "key_1"
    )
    assert [(lab.name, lab.label, lab.version) for lab in await prompts.list_labels()] == [
        ("other", "production", 1),
        ("support", "production", 2),
        ("support", "staging", 3),
    ]
    assert [lab.label for lab in await prompts.list_labels("support")] == ["production", "staging"]
    history = await prompts.label_history("support")
    assert [(m.label, m.from_version, m.to_version) for m in history] == [
        ("staging", None, 3),
        ("production", 1, 2),
        ("production", None, 1),
    ]
    assert history[1] == second
    assert [m.to_version for m in await prompts.label_history("support", limit=1)] == [3]


async def test_concurrent_moves_of_one_label_each_record_what_the_other_left(store: Store) -> None:
    prompts = store.prompts
    moves = await asyncio.gather(
        *(
            prompts.move_label(
                "p", "production", v, at=float(v), moved_by="k", tenant="t", key_id="k"
            )
            for v in range(1, 9)
        )
    )
    # Serialised: the "from" versions are every other move's "to" but one, plus None.
    froms = sorted((m.from_version for m in moves), key=lambda v: -1 if v is None else v)
    tos = {m.to_version for m in moves}
    assert froms[0] is None and froms.count(None) == 1
    assert set(froms[1:]) < tos and len(set(froms[1:])) == 7


async def test_the_first_digest_of_a_used_version_wins(store: Store) -> None:
    prompts = store.prompts
    assert await prompts.mark_used("support", 1, "a" * 64, at=1.0) == "a" * 64
    assert await prompts.mark_used("support", 1, "b" * 64, at=2.0) == "a" * 64
    assert await prompts.mark_used("support", 2, "c" * 64, at=3.0) == "c" * 64
    assert await prompts.mark_used("other", 1, "d" * 64, at=4.0) == "d" * 64
    assert await prompts.used_versions("support") == [
        UsedVersion("support", 1, "a" * 64, 1.0),
        UsedVersion("support", 2, "c" * 64, 3.0),
    ]
    assert [(u.name, u.version) for u in await prompts.used_versions()] == [
        ("other", 1),
        ("support", 1),
        ("support", 2),
    ]
