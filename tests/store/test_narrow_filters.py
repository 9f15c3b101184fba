"""An app's filters are a floor a request's filters can narrow, never widen."""

from __future__ import annotations

from typing import Any

import pytest

from groundgate.errors import InvalidRequest
from groundgate.store.knowledge import narrow_filters

FLOOR = {"team": {"$in": ["people", "it"]}, "year": 2024}


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (None, FLOOR),
        ({}, FLOOR),
        # A key the floor does not name is added (AND).
        ({"lang": "en"}, {**FLOOR, "lang": "en"}),
        # A key both name keeps only the values both allow.
        ({"team": "it"}, {**FLOOR, "team": "it"}),
        ({"team": {"$in": ["it", "finance", "people"]}}, FLOOR),
        ({"team": {"$in": ["it", "finance"]}}, {**FLOOR, "team": "it"}),
        ({"year": 2024.0}, FLOOR),  # the same number
    ],
)
def test_requests_narrow_the_floor(requested: dict[str, Any] | None, expected: Any) -> None:
    assert narrow_filters(FLOOR, requested) == expected


@pytest.mark.parametrize(
    "requested",
    [
        {"team": "finance"},  # would replace the floor's value
        {"team": {"$in": ["finance"]}},
        {"year": "2024"},  # a string is not the number
        {"year": True},  # nor is a boolean (PostgreSQL's jsonb tells them apart)
    ],
)
def test_requests_cannot_lift_the_floor(requested: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        narrow_filters(FLOOR, requested)
    assert caught.value.param == "filters"


def test_document_fields_compare_as_text() -> None:
    # The stores compare doc_id and source as text: 5 is "5".
    assert narrow_filters({"doc_id": {"$in": ["5", "6"]}}, {"doc_id": 5}) == {"doc_id": "5"}


def test_requested_filters_are_still_validated() -> None:
    with pytest.raises(InvalidRequest):
        narrow_filters(FLOOR, {"te'am": "x"})
    assert narrow_filters({}, {"team": "x"}) == {"team": "x"}  # no floor: as asked
