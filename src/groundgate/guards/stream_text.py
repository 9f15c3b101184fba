"""Rewriting an answer's text as chunks, streamed or held.

*Streamed* (:class:`StreamRewriter`): each choice's text goes through its own
:class:`HeldBack`, which emits all but a window of the latest ``WINDOW`` characters, so a span
split across chunks (an e-mail address, a key, a deny pattern's match) is whole when it is
found and replaced. The cut never falls inside a span found, nor inside a run of non-space
characters (keys, tokens and addresses have no spaces, so one of any length is held whole; a
run longer than ``MAX_HELD`` is cut anyway). The last ``CONTEXT`` characters already emitted
are searched again with the window, for the words before a span that tell what it is ("call
+1 ..."), but never re-emitted. What the window holds goes out with the choice's last chunk.
A span longer than the window whose start does not already look like one (a multi-line deny
pattern) can still go out in two pieces; PEM private keys are held from their header on.

*Held* (``texts_of`` / ``rewritten``): the whole answer, gathered, then sent with each choice's
new text in its first chunk that carried text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from groundgate.guards.spans import Span
from groundgate.providers.base import Chunk

# Characters held back per choice. Longer than any e-mail, card, IBAN or phone number with
# the words around it, and than the known key formats; a whitespace-free key of any length
# is held whole anyway (see the module docstring).
WINDOW = 256
CONTEXT = 64  # characters already emitted, searched again for a span's leading words
MAX_HELD = 8192  # a run of non-space characters longer than this is cut regardless

Finder = Callable[[str], list[Span]]  # the spans to rewrite in a text
Rewriter = Callable[[str, list[Span]], str]  # the text with them rewritten


class HeldBack:
    """One choice's text, rewritten piece by piece (see the module docstring)."""

    __slots__ = ("_context", "_find", "_pending", "_rewrite", "_seen", "_window")

    def __init__(
        self, find: Finder, rewrite: Rewriter, window: int = WINDOW, context: int = CONTEXT
    ) -> None:
        self._find = find
        self._rewrite = rewrite
        self._window = window
        self._context = context
        self._seen = ""  # the last ``context`` characters emitted, as they came
        self._pending = ""  # what arrived and is not emitted yet

    def feed(self, text: str) -> str:
        """Take ``text``; return what may go to the client now (rewritten)."""
        self._pending += text
        if len(self._pending) <= self._window:
            return ""
        spans = self._spans()
        cut = _safe_cut(self._pending, len(self._pending) - self._window, spans)
        return self._emit(cut, spans) if cut > 0 else ""

    def flush(self) -> str:
        """The rest, rewritten (the choice has ended)."""
        return self._emit(len(self._pending), self._spans()) if self._pending else ""

    def _spans(self) -> list[Span]:
        offset = len(self._seen)
        return [
            Span(max(s.start - offset, 0), s.end - offset, s.type)
            for s in self._find(self._seen + self._pending)
            if s.end > offset
        ]

    def _emit(self, cut: int, spans: Sequence[Span]) -> str:
        pending = self._pending
        out = self._rewrite(pending[:cut], [s for s in spans if s.end <= cut])
        self._seen = (self._seen + pending[:cut])[-self._context :] if self._context else ""
        self._pending = pending[cut:]
        return out


def _safe_cut(text: str, cut: int, spans: Iterable[Span]) -> int:
    """``cut`` moved back to the start of the non-space run it falls in (unless that run is
    longer than ``MAX_HELD``), then out of every span it falls in."""
    start, floor = cut, max(cut - MAX_HELD, 0)
    while start > floor and not text[start].isspace() and not text[start - 1].isspace():
        start -= 1
    if start > floor or start == 0:
        cut = start
    moved = True
    while moved:
        moved = False
        for span in spans:
            if span.start < cut < span.end:
                cut, moved = span.start, True
    return cut


def _content(choice: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return None, None
    content = delta.get("content")
    return delta, content if isinstance(content, str) else None


class StreamRewriter:
    """Every choice of a streamed answer through its own :class:`HeldBack`."""

    __slots__ = ("_held", "_last", "_make", "_open")

    def __init__(self, make: Callable[[], HeldBack]) -> None:
        self._make = make
        self._held: dict[int, HeldBack] = {}
        self._open: set[int] = set()  # choices with text held and no finish seen yet
        self._last: Chunk | None = None

    def rewrite(self, chunk: Chunk) -> Chunk:
        self._last = chunk
        choices = []
        for choice in chunk.choices:
            delta, content = _content(choice)
            if delta is None:
                choices.append(choice)
                continue
            index = int(choice.get("index", 0))
            held = self._held.get(index)
            if held is None:
                held = self._held[index] = self._make()
            out = held.feed(content) if content is not None else ""
            if choice.get("finish_reason") is not None:
                out += held.flush()
                self._open.discard(index)
            elif content is not None:
                self._open.add(index)
            if content is not None or out:
                choice = {**choice, "delta": {**delta, "content": out}}
            choices.append(choice)
        return replace(chunk, choices=choices)

    def rest(self) -> Chunk | None:
        """After a stream that ended without a finish for some choice: its held text."""
        last = self._last
        texts = {i: self._held[i].flush() for i in sorted(self._open)}
        self._open.clear()
        choices = [
            {"index": i, "delta": {"content": text}, "finish_reason": None}
            for i, text in texts.items()
            if text
        ]
        if not choices or last is None:
            return None
        return Chunk(choices, id=last.id, system_fingerprint=last.system_fingerprint)


def texts_of(chunks: Iterable[Chunk]) -> dict[int, str]:
    """Each choice's whole text (choices without any text are left out)."""
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            _, content = _content(choice)
            if content is not None:
                index = int(choice.get("index", 0))
                texts[index] = texts.get(index, "") + content
    return texts


def rewritten(
    chunks: Sequence[Chunk], texts: dict[int, str], finish: dict[int, str] | None = None
) -> list[Chunk]:
    """``chunks`` with each choice in ``texts`` carrying its new text in its first chunk that
    had text (later ones carry none), and the finish reasons in ``finish`` put in place of the
    upstream's."""
    finish = finish or {}
    placed: set[int] = set()
    out = []
    for chunk in chunks:
        choices = []
        for choice in chunk.choices:
            delta, content = _content(choice)
            index = int(choice.get("index", 0))
            if delta is not None and content is not None and index in texts:
                text = "" if index in placed else texts[index]
                placed.add(index)
                choice = {**choice, "delta": {**delta, "content": text}}
            if index in finish and choice.get("finish_reason") is not None:
                choice = {**choice, "finish_reason": finish[index]}
            choices.append(choice)
        out.append(replace(chunk, choices=choices))
    return out
