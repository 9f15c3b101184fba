"""Text plumbing shared by the loaders: decoding, whitespace normalisation, titles, and
markdown front matter. Pure functions on strings and bytes."""

from __future__ import annotations

import re

TITLE_MAX_CHARS = 120  # a first line this long is prose, not a title


class Unloadable(Exception):
    """A file or record cannot become a document; the message is the failure's reason."""


def decode_text(data: bytes) -> str:
    """UTF-8 text, with a leading byte-order mark dropped. Binary content is refused."""
    if b"\x00" in data:
        # Valid UTF-8 can hold NULs, but no text document does: this is a binary file.
        raise Unloadable("binary content, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unloadable(f"not UTF-8 text: invalid byte at offset {exc.start}") from None


# C0/C1 control characters other than tab and newline; form feeds become paragraph breaks.
# C0/C1 control characters other than tab and newline; form feeds become paragraph breaks.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u200b\ufeff]")
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_SPACE_RUN = re.compile(r"[^\S\n]+")  # whitespace other than newlines, Unicode spaces included
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def opens_fence(line: str) -> str | None:
    """The fence (e.g. "```") if ``line`` opens a fenced code block, else None."""
    match = _FENCE.match(line)
    return match.group(1) if match else None


def closes_fence(line: str, fence: str) -> bool:
    """Does ``line`` close the code block that ``fence`` opened?"""
    marker = opens_fence(line)
    return (
        marker is not None
        and marker[0] == fence[0]
        and len(marker) >= len(fence)
        and not line.strip().strip(fence[0])
    )


def normalise_text(text: str, *, markdown: bool = False) -> str:
    """Newlines normalised, runs of spaces collapsed, at most one blank line in a row.

    Paragraph breaks survive as one blank line. For markdown, leading indentation (nested
    lists, indented code) is kept, and fenced code blocks are kept verbatim apart from
    trailing spaces: collapsing spaces in code would change it.
    """
    text = _NEWLINES.sub("\n", text).replace("\f", "\n\n")
    text = _CONTROL.sub("", text)
    lines: list[str] = []
    fence: str | None = None
    for raw in text.split("\n"):
        line = raw.rstrip()
        if fence is not None:
            lines.append(line)
            if closes_fence(line, fence):
                fence = None
            continue
        if markdown and (fence := opens_fence(line)) is not None:
            lines.append(line)
            continue
        body = line.lstrip()
        if markdown and body:
            lead = "".join("    " if c == "\t" else " " for c in line[: len(line) - len(body)])
            lines.append(lead + _SPACE_RUN.sub(" ", body))
        else:
            lines.append(_SPACE_RUN.sub(" ", body))
        if len(lines) >= 2 and not lines[-1] and not lines[-2]:
            lines.pop()  # one blank line is a paragraph break; more say nothing more
    return "\n".join(lines).strip("\n")


_HEADING_MARK = re.compile(r"^#{1,6}[ \t]+")


def first_line_title(text: str, fallback: str) -> str:
    """The first non-empty line if it is short enough to be a title, else ``fallback``."""
    for line in text.split("\n"):
        line = _HEADING_MARK.sub("", line.strip())
        if line:
            return line if len(line) < TITLE_MAX_CHARS else fallback
    return fallback


# Up to three spaces, one to six hashes, then a space, a tab or the end of the line.
_ATX_OPENING = re.compile(r" {0,3}(#{1,6})(?![^ \t])")


def atx_heading(line: str) -> tuple[int, str | None] | None:
    """``(level, title)`` if ``line`` is an ATX heading ("## Setup ##"), else None.

    The title is None when nothing follows the hashes, and leaves out the spaces around it
    and a closing run of hashes after a space. It is cut with string methods: the one-regex
    form (a lazy title before an optional closing run) backtracks quadratically on a long
    run of spaces inside the title.
    """
    opening = _ATX_OPENING.match(line)
    if opening is None:
        return None
    level, rest = len(opening.group(1)), line[opening.end() :]
    if not rest:
        return level, None
    title = rest.strip(" \t")
    unclosed = title.rstrip("#")
    if unclosed != title and unclosed[-1:] in (" ", "\t"):
        title = unclosed.rstrip(" \t")
    return level, title


def markdown_title(text: str) -> str | None:
    """The text of the first level-1 ATX heading (outside code fences) that has text, if any."""
    fence: str | None = None
    for line in text.split("\n"):
        if fence is not None:
            if closes_fence(line, fence):
                fence = None
            continue
        if (fence := opens_fence(line)) is not None:
            continue
        heading = atx_heading(line)
        title = (heading[1] or "").strip() if heading is not None else ""
        if heading is not None and heading[0] == 1 and title:
            return title
    return None


_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
# The value's trailing spaces are stripped in code: "(.*?)[ \t]*$" would backtrack
# quadratically on a long run of spaces inside the value.
_FRONT_FIELD = re.compile(r"^([A-Za-z_][\w-]*)[ \t]*:[ \t]*(.*)")


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Simple YAML front matter (``key: value`` lines between ``---`` fences) and the body.

    Only flat scalar fields are read; anything fancier is left as text-valued metadata. This
    keeps "---/title: .../---" blocks out of chunks without a YAML dependency.
    """
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    fields: dict[str, str] = {}
    for line in match.group(1).split("\n"):
        field = _FRONT_FIELD.match(line)
        value = field.group(2).rstrip(" \t") if field else ""
        if field and value:
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            fields[field.group(1)] = value
    return fields, text[match.end() :]
