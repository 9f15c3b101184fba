"""Reversible redaction's way back on a streamed answer: placeholders (``[EMAIL_1]``) put back
even when one arrives split over several chunks.

Text is passed on as it comes, except from an unclosed ``[`` that could still grow into a
placeholder: that tail waits for the next piece (at most a placeholder's length, so nothing is
held for long), or for the end.
"""

from __future__ import annotations

from groundgate.guards.redaction import restore

# The longest placeholder redaction writes: "[" + 32-letter type + "_" + 6 digits + "]".
_LONGEST = 41


class StreamRestorer:
    """Per stream (per choice): ``feed`` each piece of text, ``flush`` at the end."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping
        self._pending = ""

    def feed(self, piece: str) -> str:
        text = self._pending + piece
        cut = _safe_end(text)
        self._pending = text[cut:]
        return restore(text[:cut], self.mapping)

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return restore(text, self.mapping)


def _safe_end(text: str) -> int:
    """Where ``text`` can be cut without splitting a placeholder: before a last ``[`` that
    is not closed yet and is near enough to the end to still become one."""
    opening = text.rfind("[")
    if opening == -1 or "]" in text[opening:] or len(text) - opening >= _LONGEST:
        return len(text)
    return opening
