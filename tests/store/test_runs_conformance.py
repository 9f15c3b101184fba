"""One conformance suite for every RunStore backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

from groundgate.store.base import Store
from groundgate.store.runs import RunCursor, RunRecord, RunUsage


def run(tenant: str = "acme", created_at: float = 1000.0, **kw: object) -> RunRecord:
    fields: dict[str, object] = {
        "id": "run_" + secrets.token_hex(8),
        "tenant": tenant,
        "app": "ops-agent",
        "key_id": "abcdefghijkm",
        "trace_id": "t" * 32,
        "created_at": created_at,
        "updated_at": created_at,
        "status": "pending_approval",
        "messages": [
            {"role": "user", "content": "Refund order 42 \u2028 nul:\x00"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "refund", "arguments": '{"order": 42}'},
                    }
                ],
            },
        ],
        "params": {"model": "gpt-x", "temperature": 0.0},
        "pending": [
            {"id": "call_1", "type": "function", "function": {"name": "refund", "arguments": "{}"}}
        ],
        "steps": [{"kind": "model", "n": 1, "tokens": 12}],
        "usage": RunUsage(steps=1, tool_calls=0, prompt_tokens=10, completion_tokens=2),
        **kw,
    }
    return RunRecord(**fields)  # type: ignore[arg-type]


async def test_a_run_round_trips_every_field(store: Store) -> None:
    original = run(stop_reason=None, answer=None, note="why")
    await store.runs.add_run(original)
    got = await store.runs.get_run("acme", original.id)
    assert got is not None
    expected = dataclasses.replace(original)
    if got.messages[0]["content"] != original.messages[0]["content"]:
        # PostgreSQL cannot hold NUL in jsonb: the store keeps U+FFFD in its place.
        expected.messages = [dict(original.messages[0]), original.messages[1]]
        expected.messages[0]["content"] = original.messages[0]["content"].replace("\x00", "\ufffd")
    assert got == expected


async def test_one_tenant_never_reads_or_saves_anothers(store: Store) -> None:
    mine = run(tenant="acme")
    await store.runs.add_run(mine)
    assert await store.runs.get_run("globex", mine.id) is None
    assert await store.runs.list_runs("globex") == []
    stolen = dataclasses.replace(mine, tenant="globex", status="running")
    assert not await store.runs.save_run(stolen, expected="pending_approval")
    got = await store.runs.get_run("acme", mine.id)
    assert got is not None and got.status == "pending_approval"


async def test_a_save_wins_only_from_the_expected_status(store: Store) -> None:
    pending = run()
    await store.runs.add_run(pending)
    resumed = dataclasses.replace(pending, status="running", decided_by="k1", updated_at=2000.0)
    other = dataclasses.replace(pending, status="running", decided_by="k2", updated_at=2000.0)
    results = await asyncio.gather(
        store.runs.save_run(resumed, expected="pending_approval"),
        store.runs.save_run(other, expected="pending_approval"),
    )
    assert sorted(results) == [False, True]
    got = await store.runs.get_run("acme", pending.id)
    assert got is not None and got.status == "running"
    assert got.decided_by == ("k1" if results[0] else "k2")
    done = dataclasses.replace(got, status="completed", stop_reason="final_answer", answer="ok")
    assert await store.runs.save_run(done, expected="running")
    final = await store.runs.get_run("acme", pending.id)
    assert final is not None and final.answer == "ok" and final.stop_reason == "final_answer"


async def test_listing_is_newest_first_filtered_and_paged(store: Store) -> None:
    runs = [
        run(created_at=1000.0 + i, status="completed" if i % 2 else "pending_approval")
        for i in range(5)
    ]
    runs.append(run(created_at=1010.0, app="other"))
    for r in runs:
        await store.runs.add_run(r)
    listed = await store.runs.list_runs("acme")
    assert [r.created_at for r in listed] == [1010.0, 1004.0, 1003.0, 1002.0, 1001.0, 1000.0]
    pending = await store.runs.list_runs("acme", status="pending_approval", app="ops-agent")
    assert [r.created_at for r in pending] == [1004.0, 1002.0, 1000.0]
    first = await store.runs.list_runs("acme", limit=2)
    last = first[-1]
    rest = await store.runs.list_runs("acme", before=(last.created_at, last.id), limit=10)
    assert [r.created_at for r in first + rest] == [r.created_at for r in listed]


async def test_idle_runs_are_every_tenants_least_recently_written_first(store: Store) -> None:
    runs = [
        run("acme", updated_at=1003.0, status="running"),
        run("globex", updated_at=1001.0, status="running"),
        run("acme", updated_at=1002.0, status="running"),
        run("acme", updated_at=1000.0, status="completed"),  # another status
        run("acme", updated_at=1009.0, status="running"),  # written too recently
    ]
    for r in runs:
        await store.runs.add_run(r)
    idle = await store.runs.idle_runs("running", updated_before=1005.0)
    assert [(r.tenant, r.updated_at) for r in idle] == [
        ("globex", 1001.0),
        ("acme", 1002.0),
        ("acme", 1003.0),
    ]
    first = await store.runs.idle_runs("running", updated_before=1005.0, limit=2)
    rest = await store.runs.idle_runs(
        "running", updated_before=1005.0, after=RunCursor.after(first[-1])
    )
    assert [r.id for r in first + rest] == [r.id for r in idle]
