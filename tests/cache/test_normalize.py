"""normalize_question: each rule merges what it should and keeps apart what it must."""

from __future__ import annotations

import pytest

from groundgate.cache.normalize import normalize_question


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # NFKC: full-width letters and ideographic space.
        ("\uff37\uff28\uff21\uff34\u3000is Python?", "what is python"),
        # Typographic apostrophes and quotes.
        ("Isn\u2019t a \u201cmonad\u201d?", 'is not a "monad"'),
        # Zero-width characters.
        ("what\u200b is\ufeff rust", "what is rust"),
        # Case folding, including ß.
        ("Was ist STRAßE", "was ist strasse"),
        # Whitespace runs and a space before punctuation.
        ("  how   do I\tlearn\nGo ?  ", "how do i learn go"),
        # Contractions with one reading.
        ("Why can't I sleep", "why cannot i sleep"),
        ("Why won't it start", "why will not it start"),
        ("Why doesn't it work", "why does not it work"),
        ("What's new", "what is new"),
        (
            "they're here and I'm late, we've won, you'll see",
            "they are here and i am late, we have won, you will see",
        ),
        # Courtesy at the edges.
        ("Hi, what is Docker?", "what is docker"),
        ("Hello! How do I reset my password?", "how do i reset my password"),
        ("Please explain recursion", "explain recursion"),
        ("Please, what is a monad?", "what is a monad"),
        ("What is a monad, please?", "what is a monad"),
        ("What is a monad? Thanks!", "what is a monad"),
        ("What is a monad? Thank you very much.", "what is a monad"),
        # Trailing punctuation only.
        ("What is C++???", "what is c++"),
        ("What is Node.js...", "what is node.js"),
        ("Is Python 3.10 out…", "is python 3.10 out"),
    ],
)
def test_rules_merge_equivalent_forms(a: str, b: str) -> None:
    assert normalize_question(a) == b


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # A greeting without a comma is content ("Hey Jude" is a song).
        ("Hey Jude lyrics", "Jude lyrics"),
        # "please" before a non-request word is a title, not courtesy.
        ("Please Please Me album", "Please Me album"),
        # A bare trailing "thank you" is what is asked about.
        ("How do I say thank you", "How do I say"),
        ("Translate please", "Translate"),
        # Negation is kept, only spelled out.
        ("Can I run it", "Can't I run it"),
        ("Is it safe", "Is it not safe"),
        # "'s" after a noun may be possessive; "'d" is would-or-had.
        ("John's car", "John is car"),
        ("I'd go", "I would go"),
        # Inner punctuation and numbers stay.
        ("What is C#", "What is C"),
        ("Python 3.10 features", "Python 310 features"),
        ("top 5 books", "top 10 books"),
    ],
)
def test_rules_never_merge_different_questions(a: str, b: str) -> None:
    assert normalize_question(a) != normalize_question(b)


def test_the_canonical_form_is_idempotent() -> None:
    for text in [
        "Hi, What\u2019s the BEST way to learn Go?? Thanks!",
        "Please explain it, please.",
    ]:
        once = normalize_question(text)
        assert normalize_question(once) == once


def test_ain_t_is_left_as_written() -> None:
    assert normalize_question("It ain't so") == "it ain't so"


def test_empty_and_punctuation_only() -> None:
    assert normalize_question("") == ""
    assert normalize_question(" ?! ") == ""
