"""Request features (router) and answer features (verifier): values a reader can check."""

from __future__ import annotations

from groundgate.routing.answer_features import (
    ANSWER_FEATURE_NAMES,
    answer_features,
    equation_checks,
    final_number,
)
from groundgate.routing.features import FEATURE_NAMES, estimate_tokens, request_features


def feature(names: tuple[str, ...], values: object, name: str) -> float:
    return float(values[names.index(name)])  # type: ignore[index]


def test_request_features_tell_a_word_problem_from_a_multiple_choice_question() -> None:
    word_problem = "Tom has 12 apples and buys 3 times as many. How many apples does he have?"
    choice = "Which organ makes insulin?\nA. liver\nB. pancreas\nC. heart\nD. lung\nAnswer:"
    code = "Why does this fail?\n```python\ndef f(x):\n    return x +\n```"
    a, b, c = (request_features(t) for t in (word_problem, choice, code))
    assert a.shape == (len(FEATURE_NAMES),)
    assert feature(FEATURE_NAMES, a, "log_numbers") > 0 == feature(FEATURE_NAMES, b, "log_numbers")
    assert feature(FEATURE_NAMES, a, "question_words") == 1  # "how many"
    assert feature(FEATURE_NAMES, b, "choices") == 1 and feature(FEATURE_NAMES, a, "choices") == 0
    assert feature(FEATURE_NAMES, c, "code") == 1 and feature(FEATURE_NAMES, a, "code") == 0
    assert feature(FEATURE_NAMES, b, "log_lines") > feature(FEATURE_NAMES, a, "log_lines")
    assert estimate_tokens("x" * 40) == 10 and estimate_tokens("x" * 41) == 11


def test_arithmetic_claims_are_checked() -> None:
    good = "She has 4 + 5 = <<4+5=9>>9 dollars, then 9 * 2 = <<9*2=18>>18.\n#### 18"
    bad = "He pays 600 / 2 = <<600/2=300>>300 and 900 + 300 = <<900+300=1100>>1100.\n#### 1100"
    prose = "First 12 x 3 = 36, then 36 - 4 = 30, so 30 / 2 = 15.\nThe answer is 15."
    assert equation_checks(good) == (2, 0)
    assert equation_checks(bad) == (2, 1)
    assert equation_checks(prose) == (3, 1)
    assert equation_checks("10.67 / 4 = <<10.67/4=2.67>>2.67") == (1, 0)  # rounded, not wrong
    assert final_number(good) == ("18", 1)
    assert final_number("It is 7, no wait, 8") == ("8", 0)


def test_answer_features_see_truncation_hedging_and_a_missing_final_answer() -> None:
    prompt = "A robe takes 2 bolts of blue fiber and half that much white fiber. How many in total?"
    clean = "White fiber: 2 / 2 = <<2/2=1>>1 bolt.\nTotal: 2 + 1 = <<2+1=3>>3 bolts.\n#### 3"
    unsure = "However, assuming half a bolt cannot be used, it is approximately 2.5 bolts"
    a = answer_features(prompt, clean)
    b = answer_features(prompt, unsure, "length")
    assert a.shape == (len(ANSWER_FEATURE_NAMES),)
    names = ANSWER_FEATURE_NAMES
    assert feature(names, a, "final_marker") == 1 and feature(names, b, "final_marker") == 0
    assert feature(names, a, "final_in_reasoning") == 1
    assert feature(names, b, "final_fraction") == 1 and feature(names, a, "final_fraction") == 0
    assert feature(names, b, "truncated") == 1 and feature(names, a, "truncated") == 0
    assert feature(names, b, "hedges") == 4 and feature(names, a, "hedges") == 0
    assert feature(names, a, "prompt_numbers_used") == 1.0
