"""HTML to markdown-ish text: headings become "#" lines, blocks become paragraphs, <pre>
becomes a fenced code block, and page furniture (scripts, styles, navigation) is dropped.

Uses BeautifulSoup with the stdlib "html.parser": lenient with broken markup, no C deps.
"""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from bs4.element import NavigableString, PageElement, PreformattedString, Tag

# Elements whose content is never document text.
_DROP = frozenset(
    {"script", "style", "nav", "noscript", "template", "svg", "iframe", "object", "head"}
    | {"canvas", "button", "select", "option", "textarea"}
)
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
# Elements that start and end a paragraph.
_BLOCKS = frozenset(
    {"p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote"}
    | {"ul", "ol", "dl", "table", "figure", "figcaption", "address", "details", "summary"}
    | {"hr", "body", "html", "fieldset", "caption"}
)
# Elements that start a new line inside a paragraph.
_LINES = frozenset({"li", "tr", "dt", "dd"})
_CELLS = frozenset({"td", "th"})
_PARAGRAPH = "\n\n"
_WHITESPACE = re.compile(r"\s+")


def _inline(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """``(title, text)``: the <title> (else the first <h1>, else ""), and the body as text.

    The walk is iterative: a deeply nested page must not hit the recursion limit.
    """
    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = _inline(title_tag.get_text()) if isinstance(title_tag, Tag) else ""
    if not title:
        h1 = soup.find("h1")
        title = _inline(h1.get_text(" ")) if isinstance(h1, Tag) else ""

    out: list[str] = []
    stack: list[tuple[PageElement, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            # Comments, doctypes, CDATA and processing instructions are not text.
            if not isinstance(node, PreformattedString):
                text = _WHITESPACE.sub(" ", str(node))
                if not out or out[-1].endswith("\n"):
                    text = text.lstrip()  # no indentation from the markup's layout
                if text:
                    out.append(text)
            continue
        if not isinstance(node, Tag):
            continue
        name = node.name.lower()
        if leaving:
            if name in _BLOCKS:
                out.append(_PARAGRAPH)
            elif name in _CELLS:
                out.append(" ")
            continue
        if name in _DROP:
            continue
        if name in _HEADINGS:
            text = _inline(node.get_text(" "))
            if text:
                out.append(f"{_PARAGRAPH}{'#' * _HEADINGS[name]} {text}{_PARAGRAPH}")
            continue
        if name == "pre":
            code = node.get_text().strip("\n")
            fence = "```"
            while fence in code:
                fence += "`"
            if code.strip():
                out.append(f"{_PARAGRAPH}{fence}\n{code}\n{fence}{_PARAGRAPH}")
            continue
        if name == "br":
            out.append("\n")
            continue
        if name in _BLOCKS:
            out.append(_PARAGRAPH)
        elif name in _LINES:
            out.append("\n- " if name == "li" else "\n")
        stack.append((node, True))
        stack.extend((child, False) for child in reversed(node.contents))
    return title, "".join(out)
