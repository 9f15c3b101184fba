"""A detected span of text and how overlapping spans are resolved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """``text[start:end]`` (code points, end exclusive) holds something of ``type``."""

    start: int
    end: int
    type: str

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def resolve_overlaps(spans: Iterable[Span], priority: tuple[str, ...]) -> list[Span]:
    """Keep, of spans that overlap, the one whose type comes first in ``priority`` (then the
    longest): a card number is not also a phone number. The result is sorted by start."""
    rank = {name: i for i, name in enumerate(priority)}
    ordered = sorted(spans, key=lambda s: (rank.get(s.type, len(rank)), s.start - s.end, s.start))
    kept: list[Span] = []
    for span in ordered:
        if not any(span.overlaps(other) for other in kept):
            kept.append(span)
    return sorted(kept)
