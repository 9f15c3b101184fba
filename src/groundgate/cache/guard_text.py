"""What the false-hit guard (``cache/guard.py``) reads in one question: its words, stems,
numbers, negation, names and opening wh-word (:class:`Features`), computed once per text.

Read from the *original* text, because capitalisation is how names are found.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from groundgate.store.knowledge import STOPWORDS

# Words keep inner apostrophes and dots ("can't", "m.tech", "3.6"); hyphens split them
# ("one-third" -> "one", "third"; "Myers-Briggs" -> "Myers", "Briggs").
_TOKEN = re.compile(r"[^\W_]+(?:['.][^\W_]+)*")
# What ends a sentence for the name rule: a "?" or "!" before the next word. A full stop is
# left out on purpose: "Pakistan vs. India", "Mr. Smith", "e.g. Java" would lose their names,
# and a name missed can let a wrong answer through, while a capital word taken for a name
# after a real full stop costs a miss at most.
_SENTENCE_ENDERS = frozenset("?!")
# A list number opening the text ("5. Is it true ...") is layout, not content.
_ENUMERATION = re.compile(r"^\s*\d{1,2}[.)]\s+")
_NUMBER = re.compile(r"(\d+(?:[.,]\d+)*)(k\b)?", re.IGNORECASE)
_THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+$")
# Phrases that contain a negation word without negating the question: "Is X real? Why or
# why not?", "Is X real or not?" (but not "fake or not genuine"), "If not, why?", "roll
# no. 1", and a sentence opening with "No," or "No!".
_NOT_A_NEGATION = re.compile(
    r"\bwhy or why not\b|\bor not\b(?=\W*$|\s*[?.!,;])|\bif not\b|\bno\.\s*(?=\d)"
    r"|(?:^|[.?!]\s+)no\s*[,!]"
)


def words_of(text: str) -> list[str]:
    return text.split()


NUMBER_WORDS: dict[str, int] = {
    **{w: i for i, w in enumerate(words_of("zero one two three four five six seven eight nine"))},
    **{w: 10 + i for i, w in enumerate(words_of("ten eleven twelve thirteen fourteen fifteen"))},
    **{w: 16 + i for i, w in enumerate(words_of("sixteen seventeen eighteen nineteen"))},
    **{w: 20 + 10 * i for i, w in enumerate(words_of("twenty thirty forty fifty sixty"))},
    **{w: 70 + 10 * i for i, w in enumerate(words_of("seventy eighty ninety"))},
    **{w: 1 + i for i, w in enumerate(words_of("first second third fourth fifth sixth"))},
    **{w: 7 + i for i, w in enumerate(words_of("seventh eighth ninth tenth eleventh twelfth"))},
    "hundred": 100,
    "thousand": 1000,
    "million": 10**6,
    "billion": 10**9,
    "dozen": 12,
}
# "one" is a pronoun more often than a count ("which one"), "first" an adverb ("first
# time") and "second" a unit of time: they may *match* a number ("1st" = "first") but never
# veto one on their own.
_LOOSE_NUMBER_WORDS = frozenset({"one", "first", "second"})

_NEGATIONS = frozenset(
    words_of("not no never without cannot unable nobody nothing nowhere none neither nor")
    # Negative contractions typed without the apostrophe.
    + words_of("cant dont doesnt didnt isnt arent wasnt werent shouldnt couldnt wouldnt")
    + words_of("havent hasnt")
)

# Spellings of one country that the name rule must not read as two different places.
_ALIASES = {"us": "usa", "u.s": "usa", "u.s.a": "usa", "america": "usa", "american": "usa"}
_ALIASES |= {"u.k": "uk", "britain": "uk", "british": "uk"}
_INITIALISM_SKIP = frozenset(words_of("of and the & for"))
_WH_WORDS = frozenset(words_of("what which how why when where who whom whose"))


@dataclass(frozen=True, slots=True)
class Features:
    """What the rules need from one text, computed once per text."""

    words: tuple[str, ...]  # lower-cased tokens in order, possessive "'s" removed
    stems: frozenset[str]  # words, plural "s" removed, country aliases resolved
    numbers: frozenset[str]
    loose_numbers: frozenset[str]  # values of "one", "first", "second": match, never veto
    negated: bool
    names: frozenset[str]  # stems of capitalised words / acronyms not opening a sentence
    question: str  # the opening wh-word, or "" when there is none


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(token, opens a sentence) pairs of ``text``."""
    out = []
    end = -1  # where the previous token ended
    for match in _TOKEN.finditer(text):
        start = match.start()
        opens = end < 0 or not _SENTENCE_ENDERS.isdisjoint(text[end:start])
        out.append((match.group(), opens))
        end = match.end()
    return out


def stem(word: str) -> str:
    word = _ALIASES.get(word, word)
    return word[:-1] if len(word) > 2 and word.endswith("s") and not word.endswith("ss") else word


def _numbers(words: Sequence[str], text: str) -> tuple[frozenset[str], frozenset[str]]:
    found = set()
    for digits, thousands in _NUMBER.findall(text):
        # "1,000" is one thousand and "30k" thirty thousand; "3,5" or "1.5" stay as written.
        value = digits.replace(",", "") if _THOUSANDS.match(digits) else digits
        found.add(str(int(value) * 1000) if thousands and value.isdigit() else value)
    loose = {str(NUMBER_WORDS[w]) for w in words if w in _LOOSE_NUMBER_WORDS}
    total: int | None = None
    for word in [*words, ""]:  # a trailing "" flushes the last run of number words
        value = NUMBER_WORDS.get(word) if word not in _LOOSE_NUMBER_WORDS else None
        if value is None:
            if total is not None:
                found.add(str(total))
            total = None
        elif value >= 100:
            total = (total or 1) * value  # "five hundred", "a thousand"
        else:
            total = (total or 0) + value  # "twenty five"
    return frozenset(found), frozenset(loose)


@lru_cache(maxsize=4096)
def initialisms(words: tuple[str, ...]) -> frozenset[str]:
    """First letters of runs of 2-5 words ("san francisco" -> "sf"); only needed when the
    other text has a name to look for, so made on demand."""
    content = [w for w in words if w not in _INITIALISM_SKIP]
    found = {
        "".join(w[0] for w in content[i : i + n])
        for n in range(2, 6)
        for i in range(len(content) - n + 1)
    }
    return frozenset(found | {_ALIASES[i] for i in found if i in _ALIASES})


def _is_name(token: str) -> bool:
    # Only letters have case, so a token unchanged by lower() has no capital.
    return len(token) > 1 and token != token.lower() and not token.startswith("I'")


def _is_strong_name(token: str) -> bool:
    """An acronym (``CFA``) or an inner capital (``iPhone``, ``YouTube``): a name even in a
    Title Case Question, where plain capitals say nothing. Either way a capital follows the
    first letter."""
    first = next((i for i, c in enumerate(token) if c.isalpha()), len(token))
    rest = token[first + 1 :]
    return rest != rest.lower()


@lru_cache(maxsize=4096)
def features(text: str) -> Features:
    text = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    text = _ENUMERATION.sub("", text)
    tokens = _tokens(text)
    words = [t.lower().removesuffix("'s") for t, _ in tokens]
    numbers, loose = _numbers(words, text)
    kept = _NOT_A_NEGATION.sub(" ", text.lower())
    negated = any(w in _NEGATIONS or w.endswith("n't") for w in _TOKEN.findall(kept))
    title_case = len(tokens) > 3 and sum(t[:1].isupper() for t, _ in tokens) >= 0.6 * len(tokens)
    names = frozenset(
        stem(t.lower().removesuffix("'s"))
        for t, opens in tokens
        if not opens
        and _is_name(t)
        and (_is_strong_name(t) or not title_case)
        and t.lower() not in STOPWORDS
    )
    first = words[0] if words else ""
    return Features(
        words=tuple(words),
        stems=frozenset(stem(w) for w in words),
        numbers=numbers,
        loose_numbers=loose,
        negated=negated,
        names=names,
        question=first if first in _WH_WORDS else "",
    )
