"""The false-hit guard: every rule blocks the pairs it is for and lets paraphrases through,
whichever side is the query and which the cached question."""

from __future__ import annotations

import pytest

from groundgate.cache.guard import CANDIDATE_RULES, RULES, Rule, guard
from groundgate.cache.guard_text import features


def rule(name: str) -> Rule:
    return next(r for r in (*RULES, *CANDIDATE_RULES) if r.name == name)


def blocks(name: str, a: str, b: str) -> bool:
    """Whether rule ``name`` vetoes the pair in both directions (and assert it is symmetric)."""
    check = rule(name).check
    forward = check(features(a), features(b)) is not None
    backward = check(features(b), features(a)) is not None
    assert forward == backward, f"{name} is not symmetric on {a!r} / {b!r}"
    return forward


MUST_BLOCK = [
    # numbers: digits, number words, years, versions, model numbers, thousands
    ("numbers", "What are the top 5 Python books?", "What are the top 10 Python books?"),
    ("numbers", "Best laptop for five hundred dollars", "Best laptop for 600 dollars"),
    ("numbers", "How do I prepare for GATE 2018?", "How do I prepare for GATE 2017?"),
    ("numbers", "Is the iPhone 12 waterproof?", "Is the iPhone 13 waterproof?"),
    ("numbers", "What is new in Python 3.11?", "What is new in Python 3.10?"),
    ("numbers", "Can I make 800,000 a month?", "Can I make 500,000 a month?"),
    ("numbers", "Best phone under 30k?", "Best phone under 25,000?"),
    ("numbers", "What is the third largest city?", "What is the 4th largest city?"),
    # negation: not, n't, never, without, no, and apostrophe-less contractions
    ("negation", "Can I run Docker on Windows?", "Can't I run Docker on Windows?"),
    ("negation", "Why is the app working?", "Why is the app not working?"),
    ("negation", "How do I crush ice with a blender?", "How do I crush ice without a blender?"),
    ("negation", "Has anyone won the lottery twice?", "Has anyone never won the lottery?"),
    ("negation", "Why cant I log in?", "Why can I log in?"),
    # names: each side names something the other does not
    ("names", "How do I learn Python quickly?", "How do I learn Java quickly?"),
    ("names", "Best towns to live in Montana?", "Best towns to live in Idaho?"),
    ("names", "Salary after M.Tech in ECE at IIT?", "Salary after M.Tech in EEE at IIT?"),
    (
        "names",
        "Is Hulu better than Netflix for anime?",
        "Is Hulu better than Crunchyroll for anime?",
    ),
    # a full stop does not open a sentence: "vs." and "Mr." keep the names after them
    (
        "names",
        "Who will win the cricket match, Pakistan vs. India?",
        "Who will win the cricket match, Pakistan vs. Australia?",
    ),
    ("names", "What did the teacher tell Mr. Smith today?", "What did the teacher tell Mr. Jones?"),
    # direction: opposite ends of one scale
    (
        "direction",
        "What is the best programming language?",
        "What is the worst programming language?",
    ),
    ("direction", "Which country has the most lakes?", "Which country has the least lakes?"),
    ("direction", "What happened before the war?", "What happened after the war?"),
    ("direction", "What are the advantages of Rust?", "What are the disadvantages of Rust?"),
    ("direction", "Arguments for nuclear power?", "Arguments against nuclear power?"),
    # swapped roles: two words trade places across a relation
    (
        "swapped_roles",
        "How do I convert miles to kilometers?",
        "How do I convert kilometers to miles?",
    ),
    ("swapped_roles", "Are cats afraid of tigers?", "Are tigers afraid of cats?"),
    (
        "swapped_roles",
        "Do Indian women find Pakistani men attractive?",
        "Do Pakistani women find Indian men attractive?",
    ),
    # ... also across an "and" that joins two clauses, not the two words
    (
        "swapped_roles",
        "How can I import goods from India and sell them in Canada?",
        "How can I import goods from Canada and sell them in India?",
    ),
    (
        "swapped_roles",
        "Should I study in India and visit Canada?",
        "Should I study in Canada and visit India?",
    ),
    # ... and when each side's other word stays put ("men" / "women")
    (
        "swapped_roles",
        "Do Indian men and Pakistani women get along?",
        "Do Pakistani men and Indian women get along?",
    ),
]

MUST_NOT_BLOCK = [
    # numbers: the same number written differently, or a number on one side only
    ("numbers", "What are the top 5 Python books?", "What are the top five Python books?"),
    (
        "numbers",
        "What are the best one-minute life hacks?",
        "What are the best 1 minute life hacks?",
    ),
    ("numbers", "Tips for a good first date?", "Tips for a good 1st date?"),
    ("numbers", "Best laptop under 30,000?", "Best laptop under 30k?"),
    ("numbers", "How do I prepare for CAT 2017?", "How do I prepare for CAT?"),
    ("numbers", "5. Is it true that X?", "Is it true that X?"),
    ("numbers", "What is infinity divided by 0?", "What is infinity divided by zero?"),
    # negation: both sides negate, or only a tag question negates
    ("negation", "Why can't I sleep at night?", "Why am I not able to sleep at night?"),
    ("negation", "Is Daniel Tosh funny? Why or why not?", "Is Daniel Tosh funny?"),
    ("negation", "Are mediums real or not?", "Are mediums real?"),
    ("negation", "What were your experiences with roll no. 1?", "Your experiences with roll 1?"),
    ("negation", "No, really: how do magnets work?", "How do magnets work?"),
    # names: the same name in another case, spelling, plural, initialism or demonym
    ("names", "How do I learn Python quickly?", "how do i learn python fast?"),
    ("names", "Why do people hate Hilary Clinton?", "Why do people dislike Hillary Clinton?"),
    ("names", "Where can I buy a sweater in San Francisco?", "Where can I buy a sweater in SF?"),
    ("names", "How many people live in the USA?", "How many people live in the US?"),
    ("names", "Where can I find offices in Canada?", "Where can I find Canadian offices?"),
    ("names", "Why is iPhone so expensive?", "Why are iPhones so expensive?"),
    ("names", "How accurate is the Myers-Briggs test?", "How accurate is the Myers Briggs test?"),
    ("names", "What Is The Best Way To Learn Python", "How can I learn python best?"),
    ("names", "How do I learn Python on Coursera?", "How do I learn Python?"),
    # the word after a "?" or "!" opens a sentence: its capital says nothing
    ("names", "How do I learn Python? Thanks!", "How can I learn Python? Please help"),
    # direction: one end only, or both ends on one side
    ("direction", "What is the best way to learn Go?", "How can I learn Go?"),
    ("direction", "Is Mars bigger or smaller than Earth?", "Is Mars larger than Earth?"),
    ("direction", "What are the pros and cons of Rust?", "What are the advantages of Rust?"),
    # swapped roles: the two sides of and/or/vs trading places, whole; neighbours reordering
    (
        "swapped_roles",
        "Differences between GitHub and Bitbucket?",
        "Differences between Bitbucket and GitHub?",
    ),
    (
        "swapped_roles",
        "What is the difference between a crocodile and an alligator?",
        "What is the difference between an alligator and a crocodile?",
    ),
    ("swapped_roles", "Which is better, Python or Java?", "Which is better, Java or Python?"),
    (
        "swapped_roles",
        "Cats vs dogs: which make better pets?",
        "Dogs vs cats: which make better pets?",
    ),
    (
        "swapped_roles",
        "What is the difference between machine learning and deep learning?",
        "What is the difference between deep learning and machine learning?",
    ),
    (
        "swapped_roles",
        "What is the difference between Adderall XR and Vyvanse?",
        "What's the difference between Vyvanse and Adderall?",
    ),
    (
        "swapped_roles",
        "How do I convert miles to km and gallons to liters?",
        "How do I convert gallons to liters and miles to km?",
    ),
    (
        "swapped_roles",
        "How do I convert miles to km and km to miles?",
        "How do I convert km to miles and miles to km?",
    ),
    (
        "swapped_roles",
        "What is the best diet for muscle building?",
        "Best diet for building muscle?",
    ),
    ("swapped_roles", "How can I earn money fast online?", "How can I earn money online fast?"),
]


@pytest.mark.parametrize(("name", "a", "b"), MUST_BLOCK)
def test_rule_blocks(name: str, a: str, b: str) -> None:
    assert blocks(name, a, b)
    assert guard(a, b) is not None and guard(b, a) is not None


@pytest.mark.parametrize(("name", "a", "b"), MUST_NOT_BLOCK)
def test_rule_lets_through(name: str, a: str, b: str) -> None:
    assert not blocks(name, a, b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How do I learn Python quickly?", "How can I learn Python fast?"),
        ("What's the capital of France?", "What is the capital city of France?"),
        ("Why can't I sleep at night?", "Why am I unable to sleep at night? Why or why not?"),
        ("What are the top 5 books on Go?", "Which are the five best books on Go?"),
        ("", ""),
    ],
)
def test_guard_passes_paraphrases(a: str, b: str) -> None:
    assert guard(a, b) is None
    assert guard(b, a) is None


def test_reason_names_the_rule() -> None:
    reason = guard("What are the top 5 Python books?", "What are the top 10 Python books?")
    assert reason is not None and reason.startswith("numbers: ")
    assert "5" in reason and "10" in reason


def test_rules_can_be_chosen() -> None:
    a, b = "How do I learn Python?", "Why do I learn Python?"
    assert guard(a, b) is None  # question type is a candidate, off by default
    assert guard(a, b, [rule("question_type")]) is not None
    assert guard("What is 5?", "What is 6?", rules=()) is None


@pytest.mark.parametrize(
    ("name", "a", "b", "blocked"),
    [
        ("numbers_one_side", "How do I prepare for CAT 2017?", "How do I prepare for CAT?", True),
        ("extra_name", "How do I learn Python on Coursera?", "How do I learn Python?", True),
        ("question_type", "How did WW1 begin?", "Why did WW1 begin?", True),
        ("question_type", "Which is the best phone?", "What is the best phone?", False),
        ("why_vs_other", "How did WW1 begin?", "Why did WW1 begin?", True),
        ("why_vs_other", "Where can I learn Go?", "How can I learn Go?", False),
    ],
)
def test_candidate_rules(name: str, a: str, b: str, blocked: bool) -> None:
    assert blocks(name, a, b) is blocked


def test_enabled_and_candidate_rules_are_disjoint() -> None:
    enabled = {r.name for r in RULES}
    assert enabled == {"numbers", "negation", "names", "direction", "swapped_roles"}
    assert not enabled & {r.name for r in CANDIDATE_RULES}
