"""Conversational follow-ups rewritten into a standalone query before retrieval.

"And how much does it cost?" retrieves nothing useful on its own. Without calling a model,
a follow-up is recognised by its shape (short, or opening with a pronoun or a connective) and
completed with the content words of the previous user turns that it does not already have.
Standalone questions pass through unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from groundgate.store.knowledge import keyword_terms

_ANAPHORA = re.compile(
    r"^\s*(and|but|also|so|then|what about|how about|why|it|its|it's|they|them|their|this|"
    r"that|these|those|he|she|his|her|there|which one|same)\b",
    re.IGNORECASE,
)
_REFERS_BACK = re.compile(
    r"\b(it|its|they|them|their|this|that|these|those|he|she|his|her)\b", re.IGNORECASE
)
MIN_CONTENT_WORDS = 4


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def standalone_query(messages: Sequence[dict[str, Any]]) -> str:
    """The retrieval query for a conversation: the last user turn, completed if needed."""
    turns = [message_text(m) for m in messages if m.get("role") == "user"]
    turns = [t.strip() for t in turns if t.strip()]
    if not turns:
        return ""
    last = turns[-1]
    if len(turns) == 1 or not is_follow_up(last):
        return last
    have = set(keyword_terms(last))
    extra: list[str] = []
    for previous in reversed(turns[:-1][-2:]):
        for term in keyword_terms(previous):
            if term not in have and term not in extra:
                extra.append(term)
    return f"{last} {' '.join(extra)}" if extra else last


def is_follow_up(question: str) -> bool:
    content = keyword_terms(question)
    return (
        bool(_ANAPHORA.match(question))
        or (len(content) < MIN_CONTENT_WORDS and bool(_REFERS_BACK.search(question)))
        or len(content) <= 2
    )
