"""The canonical form of a question: the exact-cache key and the text the semantic cache embeds.

Every rule here must keep the meaning: two questions that normalise to the same string are
served the same cached answer with no further check. So each rule only removes what cannot
change an answer (encoding, case, spacing, politeness, closing punctuation) or spells out
what is unambiguous (``can't`` -> ``cannot``); anything that needs judgement is left to the
semantic matcher and its guard, which see the original text.

The rules, in the order they run:

1. Unicode NFKC: full-width letters, ligatures and compatibility digits become plain ones.
2. Typographic quotes and apostrophes become ASCII (``can\u2019t`` -> ``can't``); NFKC keeps them.
3. Zero-width characters (ZWSP, ZWNJ, word joiner, BOM) are dropped; ZWJ is kept (emoji).
4. Case folding (``str.casefold``, which also folds ``ß``): the embedding model is uncased, so
   this changes nothing it sees, and for exact keys ``What is Python`` = ``what is python``.
5. Whitespace runs become one space; spaces before ``, ; ? !`` are removed.
6. Unambiguous contractions are spelled out: ``n't`` forms (``can't`` -> ``cannot``,
   ``won't`` -> ``will not``, ``doesn't`` -> ``does not``), ``'re``, ``'ve``, ``'ll``, ``i'm``,
   and ``'s`` only after wh-words, ``it``, ``that``, ``there``, ``here`` (elsewhere ``'s`` may be
   possessive, and ``'d`` is would-or-had, so both stay).
7. Courtesy at the edges is dropped, once per edge:
   - a leading greeting (``hi``, ``hello``, ``hey``, ``greetings``) only when a comma or ``!``
     follows it (``Hey Jude lyrics`` keeps its ``hey``);
   - a leading ``please`` only before a comma or a request verb (``please explain ...``), so
     titles like ``Please Please Me`` keep it;
   - a trailing ``please`` / ``thanks`` / ``thank you`` / ``thanks in advance`` / ``thx`` only
     after a comma or sentence punctuation (``what is x, please?``) -- never bare, because
     ``how do I say thank you`` asks about the phrase itself.
8. Trailing punctuation and ellipses (``. ? ! … , ; :``) are removed: ``what is x?`` =
   ``what is x``. Inner punctuation stays (``node.js``, ``c++``, ``3.10``).
"""

from __future__ import annotations

import re
import unicodedata

_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u02bc": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
        "\u2033": '"',
    }
)
_ZERO_WIDTH = str.maketrans({"\u200b": None, "\u200c": None, "\u2060": None, "\ufeff": None})
_SPACES = re.compile(r"\s+")
# Tried only from the first space of a run: from every space, a long run costs quadratic time.
_SPACE_BEFORE_PUNCT = re.compile(r"(?<!\s)\s+([,;?!])")

# Irregular negative contractions first; the regular ``xn't`` -> ``x not`` rule follows.
_IRREGULAR_NEGATIONS = {"can't": "cannot", "won't": "will not", "shan't": "shall not"}
_IRREGULAR = re.compile(r"\b(can't|won't|shan't)\b")
# ``ain't`` (am/is/are/has not) is ambiguous, so it is left as written.
_NOT = re.compile(r"\b(?!ain't)(\w+)n't\b")
_ARE_HAVE_WILL = re.compile(r"\b(\w+)'(re|ve|ll)\b")
_AM = re.compile(r"\bi'm\b")
_IS = re.compile(r"\b(what|where|who|how|when|why|it|that|there|here)'s\b")
_EXPAND = {"re": "are", "ve": "have", "ll": "will"}

_REQUEST_VERBS = (
    "tell|explain|help|give|list|describe|show|write|suggest|answer|provide|recommend|let"
    "|share|summarize|summarise|define|compare|name|advise|clarify|elaborate"
)
_LEADING_GREETING = re.compile(r"^(?:hi|hello|hey|greetings)\s*[,!]+\s*")
_LEADING_PLEASE = re.compile(rf"^please\s*(?:,\s*|(?=(?:{_REQUEST_VERBS})\b))")
_TRAILING_COURTESY = re.compile(
    r"([,;.?!])\s*(?:please|thanks(?: a lot| in advance)?|thank you(?: very much| in advance)?"
    r"|thx|many thanks)\s*[.!?]*$"
)
# Stripped with rstrip, not "[\s.?!…,;:]+$": that regex retries from every character of a
# long run of them not at the end, in quadratic time. Whitespace is single spaces by then.
_TRAILING_PUNCT = " .?!…,;:"


def normalize_question(text: str) -> str:
    """The canonical form of ``text`` (see the module docstring for each rule)."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).translate(_ZERO_WIDTH)
    text = text.casefold()
    text = _SPACES.sub(" ", text).strip()
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _IRREGULAR.sub(lambda m: _IRREGULAR_NEGATIONS[m.group(1)], text)
    text = _NOT.sub(r"\1 not", text)
    text = _ARE_HAVE_WILL.sub(lambda m: f"{m.group(1)} {_EXPAND[m.group(2)]}", text)
    text = _AM.sub("i am", text)
    text = _IS.sub(r"\1 is", text)
    text = _LEADING_GREETING.sub("", text, count=1)
    text = _LEADING_PLEASE.sub("", text, count=1)
    # The courtesy regex keeps the punctuation before it, which rule 8 then strips.
    text = _TRAILING_COURTESY.sub(r"\1", text, count=1)
    return text.rstrip(_TRAILING_PUNCT)
