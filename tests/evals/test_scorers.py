"""Scorers against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from groundgate.evals import scorers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The  Quick, brown fox!", "quick brown fox"),
        ("An apple a day", "apple day"),
        ("U.S. Army", "us army"),
        ("theatre", "theatre"),  # articles only as whole words
        ("  \t\n ", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert scorers.normalize_answer(text) == expected


def test_exact_match_ignores_case_punctuation_and_articles() -> None:
    assert scorers.exact_match("The Eiffel Tower.", "eiffel tower") == 1.0
    assert scorers.exact_match("Eiffel Tower in Paris", "eiffel tower") == 0.0


def test_token_f1_hand_computed() -> None:
    # pred tokens: cat sat on mat; gold: cat on mat -> overlap 3, P 3/4, R 1, F1 6/7.
    assert scorers.token_f1("the cat sat on the mat", "cat on a mat") == pytest.approx(6 / 7)
    # Bag of tokens: repeated tokens count only as often as they occur on both sides.
    assert scorers.token_f1("x x y", "x y y") == pytest.approx(2 / 3)
    assert scorers.token_f1("completely different", "words here") == 0.0


def test_token_f1_empty_sides() -> None:
    assert scorers.token_f1("", "the") == 1.0  # both normalise to nothing
    assert scorers.token_f1("cat", "the") == 0.0
    assert scorers.token_f1("", "cat") == 0.0


def test_best_of_takes_the_maximum_over_gold_answers() -> None:
    golds = ["Broncos", "Denver Broncos", "the Broncos of Denver"]
    assert scorers.best_of(scorers.exact_match, "Denver Broncos", golds) == 1.0
    # F1 of "Broncos won": vs "Broncos" 2/3, vs "Denver Broncos" 1/2, vs the last 2/5.
    assert scorers.best_of(scorers.token_f1, "Broncos won", golds) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        scorers.best_of(scorers.token_f1, "x", [])


def test_rules_pass() -> None:
    answer = "The server listens on PORT 8080 by default."
    assert scorers.rules_pass(answer, ["port", "8080"], ["9090"])
    assert not scorers.rules_pass(answer, ["port", "443"], [])
    assert not scorers.rules_pass(answer, [], ["By Default"])  # forbidden, case-insensitive
    assert scorers.rules_pass(answer, [], [])


def test_abstention_correct() -> None:
    assert scorers.abstention_correct(abstained=True, answerable=False)
    assert scorers.abstention_correct(abstained=False, answerable=True)
    assert not scorers.abstention_correct(abstained=True, answerable=True)
    assert not scorers.abstention_correct(abstained=False, answerable=False)


def test_recall_at_k() -> None:
    retrieved = ["a", "x", "b", "c"]
    assert scorers.recall_at_k(retrieved, {"a", "b", "c"}, 2) == pytest.approx(1 / 3)
    assert scorers.recall_at_k(retrieved, {"a", "b", "c"}, 4) == 1.0
    assert scorers.recall_at_k([], {"a"}, 10) == 0.0
    # A repeated id fills a slot once: top 2 distinct of [a, a, b] is [a, b].
    assert scorers.recall_at_k(["a", "a", "b"], {"a", "b"}, 2) == 1.0


def test_mrr_at_k() -> None:
    assert scorers.mrr_at_k(["x", "y", "a"], {"a"}, 3) == pytest.approx(1 / 3)
    assert scorers.mrr_at_k(["x", "y", "a"], {"a"}, 2) == 0.0  # cut at k
    assert scorers.mrr_at_k(["b", "a"], {"a", "b"}, 10) == 1.0  # first relevant counts


def test_ndcg_hand_computed() -> None:
    # Relevant at ranks 1 and 3: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3).
    expected = 1.5 / (1 + 1 / math.log2(3))
    assert scorers.ndcg_at_k(["a", "x", "b"], {"a", "b"}, 10) == pytest.approx(expected)
    assert expected == pytest.approx(0.91972, abs=1e-5)
    # One relevant id at rank 3: 1/log2(4) / 1.
    assert scorers.ndcg_at_k(["x", "y", "a"], {"a"}) == pytest.approx(0.5)


def test_ndcg_edge_cases() -> None:
    relevant = {f"d{i}" for i in range(12)}
    # More relevant ids than k: the ideal DCG is capped at k ranks, so ten hits are perfect.
    assert scorers.ndcg_at_k([f"d{i}" for i in range(10)], relevant, 10) == pytest.approx(1.0)
    # A relevant id past rank k earns nothing.
    assert scorers.ndcg_at_k([f"x{i}" for i in range(10)] + ["a"], {"a"}, 10) == 0.0
    assert scorers.ndcg_at_k([], {"a"}) == 0.0
    # Duplicates earn no second credit: [a, a, b] is [a, b], a perfect ranking of {a, b}.
    assert scorers.ndcg_at_k(["a", "a", "b"], {"a", "b"}) == pytest.approx(1.0)
    # Perfect ranking followed by junk is still 1.
    assert scorers.ndcg_at_k(["a", "b", "x", "y"], {"b", "a"}) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        scorers.ndcg_at_k(["a"], set())
    with pytest.raises(ValueError):
        scorers.ndcg_at_k(["a"], {"a"}, 0)


def test_percentile_and_mean() -> None:
    assert scorers.percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    # p95 of 10..50: position 4 * 0.95 = 3.8 -> 40 + 0.8 * 10.
    assert scorers.percentile([10, 20, 30, 40, 50], 95) == pytest.approx(48.0)
    assert scorers.percentile([7.0], 95) == 7.0
    assert scorers.percentile([], 50) is None
    values = [3.0, 1.0, 8.5, 2.2, 9.9, 0.4, 5.0]
    for q in (0, 25, 50, 95, 100):
        assert scorers.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    with pytest.raises(ValueError):
        scorers.percentile([1.0], 101)
    assert scorers.mean([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    assert scorers.mean([]) is None
