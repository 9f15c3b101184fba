"""Fusion, follow-up rewriting and the outline router: pure functions."""

from __future__ import annotations

import pytest

from groundgate.retrieval.fusion import rrf, weighted
from groundgate.retrieval.outline import route
from groundgate.retrieval.rewrite import is_follow_up, standalone_query
from groundgate.store.knowledge import Hit, StoredChunk


def hits(*ids: str, scores: list[float] | None = None) -> list[Hit]:
    values = scores or [float(len(ids) - i) for i in range(len(ids))]
    return [Hit(i, s) for i, s in zip(ids, values, strict=True)]


def test_rrf_rewards_agreement() -> None:
    fused = rrf({"keyword": hits("a", "b", "c"), "dense": hits("b", "d", "a")}, k=60)
    assert [h.chunk_id for h in fused][:2] == ["b", "a"]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert {h.chunk_id for h in fused} == {"a", "b", "c", "d"}


def test_rrf_ties_break_by_id() -> None:
    fused = rrf({"x": hits("b"), "y": hits("a")})
    assert [h.chunk_id for h in fused] == ["a", "b"]


def test_weighted_normalises_each_list() -> None:
    lists = {
        "keyword": hits("a", "b", scores=[30.0, 10.0]),
        "dense": hits("b", "a", scores=[0.9, 0.1]),
    }
    fused = weighted(lists, {"keyword": 0.3, "dense": 0.7})
    assert [h.chunk_id for h in fused] == ["b", "a"]
    assert fused[0].score == pytest.approx(0.7)
    assert fused[1].score == pytest.approx(0.3)
    # One weight at 1: the other list cannot change the order.
    only_kw = weighted(lists, {"keyword": 1.0, "dense": 0.0})
    assert [h.chunk_id for h in only_kw] == ["a", "b"]


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        (["How do I rotate an API key?"], "How do I rotate an API key?"),
        (
            ["How do I rotate an API key?", "And how long does it take?"],
            "And how long does it take? rotate api key",
        ),
        (
            ["What does the pro plan cost?", "what about enterprise?"],
            "what about enterprise? pro plan cost",
        ),
        (
            ["Which port does the server use?", "How do I configure TLS certificates for nginx?"],
            "How do I configure TLS certificates for nginx?",
        ),
    ],
)
def test_standalone_query(turns: list[str], expected: str) -> None:
    messages: list[dict[str, object]] = []
    for turn in turns:
        messages.append({"role": "user", "content": turn})
        messages.append({"role": "assistant", "content": "..."})
    assert standalone_query(messages[:-1]) == expected


def test_follow_up_shapes() -> None:
    assert is_follow_up("and then?")
    assert is_follow_up("Why?")
    assert not is_follow_up("What is the maximum upload size for documents?")


def chunk(cid: str, title: str, headings: list[str]) -> StoredChunk:
    return StoredChunk(cid, "d", 0, "text", title, "s", headings, {})


def test_outline_router_prefers_matching_sections() -> None:
    chunks = [
        chunk("a", "Admin guide", ["Billing", "Invoices"]),
        chunk("b", "Admin guide", ["Installation", "From source"]),
        chunk("c", "Release notes", []),
    ]
    ranked = route("how to install from source", chunks)
    assert ranked[0][0].id == "b" and ranked[0][1] > 0
    assert ranked[-1][1] == 0
