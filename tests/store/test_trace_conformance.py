"""Trace persistence, the same for every Store backend (the ``store`` fixture)."""

from __future__ import annotations

from groundgate.observe.trace import Attempt, Span, Trace
from groundgate.store.base import Store


def make_trace(trace_id: str, tenant: str = "default", **fields: object) -> Trace:
    trace = Trace(id=trace_id, tenant=tenant, endpoint="chat.completions", model="m")
    trace.spans.append(Span("generate", 0.1, 2.5, attrs={"k": [1, 2]}))
    trace.attempts.append(Attempt("p:m", "ok", 2.4))
    trace.prompt_tokens, trace.completion_tokens, trace.cost_usd = 3, 4, 0.5
    for name, value in fields.items():
        setattr(trace, name, value)
    return trace


async def test_write_and_read_traces(store: Store) -> None:
    assert await store.ping()
    await store.write_traces([make_trace("a"), make_trace("b", tenant="other")])
    got = await store.get_trace("default", "a")
    assert got is not None
    assert got["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert got["spans"][0]["name"] == "generate" and got["spans"][0]["attrs"] == {"k": [1, 2]}
    assert got["attempts"][0]["deployment"] == "p:m"
    assert got == make_trace("a", created_at=got["created_at"]).to_dict()
    # Tenant-scoped: another tenant's trace id finds nothing.
    assert await store.get_trace("default", "b") is None
    assert await store.get_trace("other", "b") is not None
    assert await store.get_trace("default", "' OR '1'='1") is None
    assert await store.get_trace("default", "missing") is None


async def test_writing_a_trace_again_replaces_it(store: Store) -> None:
    await store.write_traces([make_trace("a", status="error", http_status=502)])
    await store.write_traces([make_trace("a", completion_tokens=9)])
    got = await store.get_trace("default", "a")
    assert got is not None
    assert (got["status"], got["usage"]["completion_tokens"]) == ("ok", 9)


async def test_a_batch_may_repeat_a_trace_and_the_last_wins(store: Store) -> None:
    await store.write_traces([make_trace("a", model="first"), make_trace("a", model="last")])
    got = await store.get_trace("default", "a")
    assert got is not None and got["model"] == "last"
    await store.write_traces([])


async def test_odd_text_is_stored_not_rejected(store: Store) -> None:
    # NUL, quotes, backslashes and non-BMP text come from clients; a batch must never fail
    # on them (PostgreSQL cannot store NUL in text or jsonb: it keeps U+FFFD instead).
    odd = "a\x00b 'q' \"d\" \\u0000 \\\x00 😀"
    trace = make_trace("odd", model=odd, error_message=odd, attrs={"note": odd, odd: 1})
    await store.write_traces([trace, make_trace("plain")])
    got = await store.get_trace("default", "odd")
    assert got is not None
    assert got["model"].replace("\ufffd", "\x00") == odd
    assert got["attrs"]["note"].replace("\ufffd", "\x00") == odd
    assert await store.get_trace("default", "plain") is not None
