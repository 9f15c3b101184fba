"""The false-hit guard: cheap lexical checks that veto a semantic-cache hit.

Sentence embeddings place "top 5 X" next to "top 10 X" and "can I X" next to "can't I X":
the wording is nearly the same, the question is not. Each rule below looks for one such
difference between the new question and the cached one and, when it finds it, returns a
short reason; ``guard`` returns the first reason of the enabled rules, or ``None``.

The rules read the *original* text (the cache keeps it beside the normalised key), because
capitalisation is how they find names. Every rule was measured on QQP by
``bench/semantic_cache.py`` (results in ``bench/results/semantic_cache.json``). A rule is
enabled when the pairs that it alone vetoes hold at least as many different questions as
duplicates: a wrong answer costs more than a miss. On QQP dev, all pairs with cosine
>= 0.90 under the cache's int8 embedder (duplicates / different questions vetoed by that rule
only):

    enabled    numbers 38/86, negation 45/44, names 46/87, direction 6/10,
               swapped_roles 5/24
    left off   numbers_one_side 46/26, extra_name 231/98, question_type 151/61,
               why_vs_other 63/27

Many QQP "duplicates" these rules veto are not the same question ("Is Spotify available in
India?" / "Is Spotify not available in India?" is labelled a duplicate), so the measured
cost is an upper bound. That is why negation stays on at an even count: a flipped question
is the false hit the rule exists for.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from groundgate.cache.guard_text import Features, features, initialisms, stem, words_of
from groundgate.store.knowledge import STOPWORDS

# Opposite ends of one scale, each end with its synonyms: a pair vetoes when each text
# holds words of a different end only ("Is Mars bigger or smaller than Earth?" holds both).
OPPOSITES: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    (frozenset(words_of(low)), frozenset(words_of(high)))
    for low, high in (
        ("best", "worst"),
        ("better", "worse"),
        ("most", "least"),
        ("more", "less fewer"),
        ("before", "after"),
        ("higher", "lower"),
        ("highest", "lowest"),
        ("maximum max", "minimum min"),
        ("largest biggest greatest", "smallest"),
        ("larger bigger greater", "smaller lesser"),
        ("longest", "shortest"),
        ("longer", "shorter"),
        ("fastest quickest", "slowest"),
        ("faster quicker", "slower"),
        ("easiest simplest", "hardest toughest"),
        ("easier simpler", "harder tougher"),
        ("cheapest", "expensive costliest"),
        ("increase", "decrease reduce"),
        ("advantages benefits pros", "disadvantages drawbacks cons"),
        ("positive", "negative"),
        ("good", "bad"),
        ("right", "wrong"),
        ("above", "below"),
        ("for", "against"),
    )
)
# What/which/how ask for a thing or a way and interchange freely ("How do I X" = "What is
# the best way to X"); whom and whose ask for a person.
_QUESTION_CLASS = {"which": "what", "how": "what", "whom": "who", "whose": "who"}


def _near_spelling(name: str, word: str) -> bool:
    """One letter apart ("Hilary"/"Hillary"), or one word's derivation ("Canada"/"Canadian",
    "Islam"/"Islamic"): a shared prefix of 5+ letters covering 80% of the shorter word."""
    short, long_ = sorted((name, word), key=len)
    if len(short) < 5:
        return False
    prefix = len(short) if long_.startswith(short) else 0
    while prefix < len(short) and short[prefix] == long_[prefix]:
        prefix += 1
    if prefix >= max(5, 0.8 * len(short)):
        return True
    # One insertion, deletion or substitution at the first difference.
    return len(long_) - len(short) <= 1 and (
        short[prefix + (len(short) == len(long_)) :] == long_[prefix + 1 :]
    )


def _mentions(f: Features, name: str) -> bool:
    """Whether ``f`` mentions ``name`` in any case, as an initialism ("SF" for "San
    Francisco"), or spelt a little differently (letters only, 5 or more)."""
    if name in f.stems or name in initialisms(f.words):
        return True
    return name.isalpha() and any(_near_spelling(name, w) for w in f.stems if w.isalpha())


def _unmentioned(f: Features, other: Features) -> set[str]:
    return {n for n in f.names if not _mentions(other, n)}


# --- the rules: (query features, cached features) -> reason or None ---------------------


def _numbers_differ(q: Features, c: Features) -> frozenset[str]:
    # "1st" matches "first" and "1" matches "one": loose words excuse, never veto.
    return (q.numbers - c.numbers - c.loose_numbers) | (c.numbers - q.numbers - q.loose_numbers)


def different_numbers(q: Features, c: Features) -> str | None:
    """Both sides carry numbers (digits or words) and they differ: "top 5" vs "top 10",
    2016 vs 2017, "iPhone 12" vs "iPhone 13", "five" vs "6". A number on one side only does
    not veto: on QQP, "How do I prepare for CAT 2017" is mostly the same question as "How do
    I prepare for CAT" (see ``numbers_one_side``)."""
    if q.numbers and c.numbers and _numbers_differ(q, c):
        return f"{sorted(q.numbers)} vs {sorted(c.numbers)}"
    return None


def numbers_one_side(q: Features, c: Features) -> str | None:
    """Left off: also veto a number on one side only. Beyond ``numbers`` it blocks 47 true
    duplicates ("Doctor Strange (2016 movie)" = "Doctor Strange") for 30 different ones."""
    if _numbers_differ(q, c):
        return f"{sorted(q.numbers)} vs {sorted(c.numbers)}"
    return None


def negation_mismatch(q: Features, c: Features) -> str | None:
    """One side negates ("not", "n't", "never", "without", "no", ...) and the other does not;
    tags like "or not?" and "Why or why not?" do not count."""
    if q.negated != c.negated:
        return "on one side only"
    return None


def different_names(q: Features, c: Features) -> str | None:
    """Each side names something the other never mentions: "Python" vs "Java", "Montana" vs
    "Idaho", "ECE" vs "EEE". Names are capitalised words not opening a sentence, acronyms and
    inner capitals (``iPhone``); a mention in any case, initialism or near spelling counts."""
    only_q, only_c = _unmentioned(q, c), _unmentioned(c, q)
    if only_q and only_c:
        return f"{sorted(only_q)} vs {sorted(only_c)}"
    return None


def extra_name(q: Features, c: Features) -> str | None:
    """Left off: also veto a name on one side only. On QQP that is mostly added context
    ("... in India?"): beyond ``names`` it blocks 282 true duplicates for 107 different."""
    only = _unmentioned(q, c) | _unmentioned(c, q)
    return f"{sorted(only)} on one side only" if only else None


_STEMMED_OPPOSITES = tuple(
    (frozenset(map(stem, low)), frozenset(map(stem, high))) for low, high in OPPOSITES
)


def opposite_direction(q: Features, c: Features) -> str | None:
    """Opposite ends of a scale: "best" vs "worst", "most" vs "least", "before" vs "after"."""
    for low, high in _STEMMED_OPPOSITES:
        for a, b in ((q.stems, c.stems), (c.stems, q.stems)):
            if low & a and not high & a and high & b and not low & b:
                return f"{sorted(low & a)[0]!r} vs {sorted(high & b)[0]!r}"
    return None


_SYMMETRIC = frozenset(words_of("and or vs versus between & nor both"))


def _sides(a: list[str], b: list[str], x: str, y: str) -> bool:
    """Whether ``x`` and ``y`` are the two sides of a symmetric word between them in ``a``.

    Only then does the swap exchange equals. The content words between each of them and
    that word must move with it in ``b``: ``b`` then swaps the two sides whole ("machine
    learning and deep learning" / "deep learning and machine learning", "convert miles to km
    and gallons to liters" / "convert gallons to liters and miles to km"). Where an "and"
    merely joins two clauses, the words around the two stay put ("import from India and sell
    in Canada" / "import from Canada and sell in India"), and the swap changes who does what
    like any other. Function words are left out ("girls or the boys" = "boys or the girls").
    The words carry no commas, so a reordered list ("Python, C or Java" / "Java, C or
    Python") reads as sides "Python C" and "Java" and is vetoed: a miss, not a wrong answer.
    """
    a = [w for w in a if w not in STOPWORDS or w in _SYMMETRIC]
    b = [w for w in b if w not in STOPWORDS or w in _SYMMETRIC]
    i, j, bi, bj = a.index(x), a.index(y), b.index(x), b.index(y)
    for k in range(i + 1, j):
        left, right = a[i + 1 : k], a[k + 1 : j]
        if (
            a[k] in _SYMMETRIC
            and b[bi + 1 : bi + 1 + len(left)] == left
            and bj >= len(right)
            and b[bj - len(right) : bj] == right
        ):
            return True
    return False


def swapped_roles(q: Features, c: Features) -> str | None:
    """Two content words trade places and the swap explains the difference: "convert miles
    to km" vs "convert km to miles", "Do Indian women find Pakistani men attractive?" vs "Do
    Pakistani women find Indian men attractive?", "import goods from India and sell them in
    Canada" vs "... from Canada ... in India". Not when the two are the sides of a symmetric
    "and"/"or"/"vs" ("between X and Y" = "between Y and X", see ``_sides``), and not for
    neighbours ("muscle building" = "building muscle"). A word that occurs twice is never
    one of the two, so "miles to km and km to miles" in either order is left alone."""
    a, b = list(q.words), list(c.words)
    if len(a) > 40 or len(b) > 40:
        return None
    shared = [w for w in a if w not in STOPWORDS and a.count(w) == 1 and b.count(w) == 1]
    base: float | None = None
    for i, x in enumerate(shared):
        for y in shared[i + 1 :]:
            ia, ja, ib, jb = a.index(x), a.index(y), b.index(x), b.index(y)
            if ib < jb or ja - ia < 2 or ib - jb < 2:
                continue
            # One text may spell a side out more ("Adderall XR and Vyvanse" / "Vyvanse and
            # Adderall"): the two being the sides in either text is enough.
            if _sides(a, b, x, y) or _sides(b, a, y, x):
                continue
            if base is None:
                base = difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
            swapped = [y if w == x else x if w == y else w for w in a]
            ratio = difflib.SequenceMatcher(None, swapped, b, autojunk=False).ratio()
            if ratio >= 0.8 and ratio - base >= 0.1:
                return f"{x!r} and {y!r}"
    return None


def different_question_type(q: Features, c: Features) -> str | None:
    """Left off: both open with a wh-word of a different kind -- a reason ("why"), a time
    ("when"), a place ("where"), a person ("who"), a thing or way (what/which/how). On QQP,
    "Where is the best X" = "What is the best X" and "How did WW1 begin" = "Why did WW1
    begin" often enough that it blocks 162 true duplicates for 67 different questions."""
    a, b = _QUESTION_CLASS.get(q.question, q.question), _QUESTION_CLASS.get(c.question, c.question)
    if a and b and a != b:
        return f"{q.question!r} vs {c.question!r}"
    return None


def why_vs_other(q: Features, c: Features) -> str | None:
    """Left off: only a reason ("why") against another wh-question ("What causes X" = "Why
    does X happen"): still 68 true duplicates blocked for 30 different questions."""
    if q.question and c.question and (q.question == "why") != (c.question == "why"):
        return f"{q.question!r} vs {c.question!r}"
    return None


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    check: Callable[[Features, Features], str | None]


RULES: tuple[Rule, ...] = (
    Rule("numbers", different_numbers),
    Rule("negation", negation_mismatch),
    Rule("names", different_names),
    Rule("direction", opposite_direction),
    Rule("swapped_roles", swapped_roles),
)
CANDIDATE_RULES: tuple[Rule, ...] = (
    Rule("numbers_one_side", numbers_one_side),
    Rule("extra_name", extra_name),
    Rule("question_type", different_question_type),
    Rule("why_vs_other", why_vs_other),
)


def guard(query: str, cached: str, rules: Sequence[Rule] = RULES) -> str | None:
    """Why ``cached`` must not answer ``query`` despite their similarity, or ``None``."""
    q, c = features(query), features(cached)
    for rule in rules:
        reason = rule.check(q, c)
        if reason is not None:
            return f"{rule.name}: {reason}"
    return None
