"""Text plumbing for the extractive answerer: question and context from OpenAI messages,
numbered sources, and a sentence splitter that survives abbreviations, decimals and bullets.

Pure functions, no model: they are cheap and tested on their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Roles whose text is context the answer may quote. Tool results carry retrieved facts in
# agent-style conversations; assistant turns do not (they are the model's own words).
_CONTEXT_ROLES = ("system", "developer", "tool")


@dataclass(frozen=True, slots=True)
class Sentence:
    source: int  # the [n] the answer cites
    position: int  # order within the whole context, to restore document order
    text: str  # what the answer quotes
    # What scoring reads: ``text`` with a leading pronoun replaced by the entity it most
    # likely refers to ("She won ..." -> "Marie Curie won ..."), else ``text``.
    resolved: str


def message_text(message: dict[str, Any]) -> str:
    """The text of a message whose content is a string, None, or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") in ("text", "input_text")
        ]
        return "\n".join(p for p in parts if p)
    return ""


def question_and_context(messages: Iterable[dict[str, Any]]) -> tuple[str, str]:
    """The last user message, and the context messages joined as blank-line paragraphs."""
    question = ""
    context: list[str] = []
    for message in messages:
        role = message.get("role")
        text = message_text(message).strip()
        if role == "user":
            question = text
        elif role in _CONTEXT_ROLES and text:
            context.append(text)
    return question, "\n\n".join(context)


_MARKER = re.compile(r"^[ \t]*\[(\d{1,4})\][ \t]*", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def split_sources(context: str) -> list[tuple[int, str]]:
    """``(n, text)`` per source: ``[n]``-marked blocks if the context has them, else paragraphs.

    Text before the first marker (typically instructions) is not a source: quoting it would
    cite nothing.
    """
    markers = list(_MARKER.finditer(context))
    if markers:
        blocks = []
        for i, match in enumerate(markers):
            end = markers[i + 1].start() if i + 1 < len(markers) else len(context)
            text = context[match.end() : end].strip()
            if text:
                blocks.append((int(match.group(1)), text))
        return blocks
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(context)]
    return [(n, p) for n, p in enumerate((p for p in paragraphs if p), start=1)]


# Periods after these never end a sentence ("e.g. Paris", "Dr. Watson").
_NEVER_FINAL = {
    "e.g", "i.e", "cf", "viz", "vs", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "no",
    "fig", "figs", "approx", "ca", "mt", "gen", "gov", "sen", "rep", "col", "lt", "sgt", "capt",
    "inc", "ltd", "corp", "co", "dept", "univ", "vol", "p", "pp", "ed", "eds", "al", "op",
    "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
}  # fmt: skip
# Periods after these end a sentence only if a capitalised word follows ("etc. The next").
_MAYBE_FINAL = {"etc", "a.m", "p.m", "u.s", "u.k", "u.n", "e.u"}
ABBREVIATIONS = frozenset(_NEVER_FINAL | _MAYBE_FINAL)

# A run of end marks is only tried from its first mark, and taken whole: tried from every
# mark, a long run not followed by a space costs quadratic time.
_BOUNDARY = re.compile(r"(?<![.!?…])[.!?…]++[\"'\u201d\u2019)\]]*+(?=\s)")
_BULLET = re.compile(r"^\s*(?:[-*•‣◦▪]|\d{1,3}[.)]|[a-zA-Z][)])\s+")
_TERMINAL = re.compile(r"[.!?:;…][\"'\u201d\u2019)\]]*$")
_SPACES = re.compile(r"\s+")
_NON_SPACE = re.compile(r"\S")
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")  # "u.s", "e.g"
# Only a word this short can be an abbreviation or an initial; looking no further back keeps
# each end mark's test constant-time on text with no spaces.
_WORD_LOOKBACK = 64


def _lines_to_segments(text: str) -> list[str]:
    """Join wrapped lines back into prose; keep bullets, headings and paragraphs apart."""
    segments: list[str] = []
    current: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line:
            if current:
                segments.append(" ".join(current))
                current = []
            continue
        bullet = _BULLET.match(line)
        if bullet:
            line = line[bullet.end() :]
        if current and (bullet or _ends_unit(current[-1], line)):
            segments.append(" ".join(current))
            current = []
        current.append(line)
    if current:
        segments.append(" ".join(current))
    return segments


def _ends_unit(previous: str, line: str) -> bool:
    """Does a line break after ``previous`` end a unit, or is it just a wrapped line?"""
    if _TERMINAL.search(previous):
        return True
    # A short unpunctuated line before a capitalised one is a heading or a list item; a long
    # one is prose wrapped before a proper noun, so we keep it joined.
    return len(previous.split()) <= 8 and line[:1].isupper()


def _is_boundary(segment: str, start: int, end: int) -> bool:
    if segment[start] != ".":
        return True  # ! and ? are unambiguous enough
    following = _NON_SPACE.search(segment, end)
    nxt = following.group() if following else ""
    next_upper = bool(nxt) and (nxt.isupper() or nxt.isdigit() or nxt in "\"'\u201c([")
    word = _word_before(segment, start)
    if word is None:
        return next_upper  # too long to be an abbreviation or an initial
    token = word.lstrip("(\"'[").lower()
    if token in _NEVER_FINAL:
        return False
    if token in _MAYBE_FINAL or _DOTTED.fullmatch(token):
        return next_upper and token not in ("e.g", "i.e")
    if len(token) == 1 and token.isalpha() and word[:1].isupper():
        return False  # an initial, as in "J. R. R. Tolkien"
    # "approx. five": a lower-case continuation is not a new sentence.
    return next_upper


def _word_before(segment: str, stop: int) -> str | None:
    """The last whitespace-separated word of ``segment[:stop]`` ("" if none), or None when it
    is longer than ``_WORD_LOOKBACK``."""
    end = stop
    while end > 0 and segment[end - 1].isspace():
        end -= 1
    low = max(0, end - _WORD_LOOKBACK)
    begin = end
    while begin > low and not segment[begin - 1].isspace():
        begin -= 1
    if begin == low and low > 0 and not segment[low - 1].isspace():
        return None
    return segment[begin:end]


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``, whitespace-normalised, in order."""
    sentences: list[str] = []
    for segment in _lines_to_segments(text):
        segment = _SPACES.sub(" ", segment).strip()
        start = 0
        for match in _BOUNDARY.finditer(segment):
            if _is_boundary(segment, match.start(), match.end()):
                piece = segment[start : match.end()].strip()
                if piece:
                    sentences.append(piece)
                start = match.end()
        rest = segment[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


# A crude stand-in for coreference: a sentence that opens with a pronoun is usually about
# the proper noun that opened an earlier sentence. Without this, "She discovered radium"
# never matches "What did Marie Curie discover?", because the name is one sentence back.
_SUBJECT_PRONOUNS = {"he", "she", "it", "they"}
_POSSESSIVE_PRONOUNS = {"his", "her", "its", "their"}
_NAME_WORD = r"[A-Z][\w'\u2019.-]*"
# An optional "The", then capitalised words (name particles allowed), then a break.
_LEAD_ENTITY = re.compile(
    rf"^(?:The\s+)?({_NAME_WORD}(?:\s+(?:{_NAME_WORD}|van|von|de|der|da|di|du|la|le))*)"
    r"(?=[\s,:;(])"
)
# Capitalised sentence openers that are not names.
_NOT_ENTITIES = _SUBJECT_PRONOUNS | _POSSESSIVE_PRONOUNS | {
    "a", "an", "the", "this", "that", "these", "those", "in", "on", "at", "for", "from", "by",
    "with", "after", "before", "during", "when", "while", "if", "as", "but", "and", "or", "so",
    "however", "there", "here", "we", "you", "i", "our", "your", "my", "one", "some", "many",
    "most", "all", "each", "every", "no", "not", "to", "of", "since", "although", "because",
}  # fmt: skip


def _lead_entity(sentence: str) -> str | None:
    match = _LEAD_ENTITY.match(sentence)
    if not match:
        return None
    entity = match.group(1).rstrip(".")
    first = entity.split()[0].lower()
    return None if first in _NOT_ENTITIES or len(entity) < 2 else entity


def resolve_pronoun(sentence: str, entity: str | None) -> str:
    """``sentence`` with a leading he/she/it/they (or his/her/its/their) replaced by ``entity``."""
    if not entity:
        return sentence
    first, _, rest = sentence.partition(" ")
    word = first.lower()
    if word in _SUBJECT_PRONOUNS and rest:
        return f"{entity} {rest}"
    if word in _POSSESSIVE_PRONOUNS and rest:
        return f"{entity}'s {rest}"
    return sentence


# Field labels that prompt templates put before a source's parts ("Title: ...", "Text: ...").
_LABEL = re.compile(r"^(?:title|text|content|body|snippet|passage|document)[ \t]*:[ \t]*", re.I)
# "Paris: Paris is the capital ..." - a short label before the first sentence.
_TITLE_PREFIX = re.compile(r"^([^\n:.!?]{1,80}):[ \t]+(?=\S)")


def split_title(source: str) -> tuple[str | None, str]:
    """A source's title (a heading line, or "Title: text" on its first line) and its body.

    Titles are not quoted as answers (a heading answers nothing), but they name what the
    source is about, which pronoun resolution uses.
    """
    first, newline, rest = source.partition("\n")
    first = _LABEL.sub("", first.strip())
    rest = rest.strip()
    # A short unpunctuated first line before a capitalised one is a heading, not wrapped prose.
    short = len(first.split()) <= 8 and not _TERMINAL.search(first) and not _BULLET.match(source)
    if rest and short and (rest[:1].isupper() or _LABEL.match(rest)):
        return first or None, _LABEL.sub("", rest)
    match = _TITLE_PREFIX.match(first)
    if match and len(match.group(1).split()) <= 8:
        return match.group(1).strip(), first[match.end() :] + newline + rest
    return None, first + newline + rest


def context_sentences(context: str) -> list[Sentence]:
    """Every sentence of every source, tagged with its source number and position."""
    out: list[Sentence] = []
    sources = split_sources(context)
    # Numbered sources are separate documents: a pronoun never reaches into the previous one.
    # Paragraphs of one context are one text, so the entity carries across them.
    separate = bool(_MARKER.search(context))
    entity: str | None = None
    for source, block in sources:
        title, text = split_title(block)
        if separate or title:
            entity = (_lead_entity(title + " ") or title) if title else None
        for sentence in split_sentences(text):
            resolved = resolve_pronoun(sentence, entity)
            entity = _lead_entity(sentence) or entity
            out.append(Sentence(source, len(out), sentence, resolved))
    return out
