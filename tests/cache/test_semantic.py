"""SemanticMatcher: the threshold gate, the guard gate, and both on real MiniLM vectors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from groundgate.cache.normalize import normalize_question
from groundgate.cache.semantic import DEFAULT_THRESHOLD, Decision, SemanticMatcher
from groundgate.providers.local.embedder import MiniLMEmbedder

# Nothing may be downloaded at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_default_threshold_is_a_high_cosine() -> None:
    assert 0.9 <= DEFAULT_THRESHOLD < 1.0
    assert SemanticMatcher().threshold == DEFAULT_THRESHOLD


def test_below_threshold_is_a_miss() -> None:
    decision = SemanticMatcher(0.9).decide(0.89, "What is Go?", "What is Go?")
    assert decision == Decision(False, 0.89, decision.reason)
    assert "0.890 < 0.9" in decision.reason


def test_at_or_above_threshold_is_a_hit() -> None:
    matcher = SemanticMatcher(0.9)
    assert matcher.decide(0.9, "How do I learn Go?", "How can I learn Go?").hit
    hit = matcher.decide(np.float32(0.97), "How do I learn Go?", "How can I learn Go?")
    assert hit.hit and isinstance(hit.similarity, float) and ">= 0.9" in hit.reason


def test_guard_vetoes_a_similar_but_different_question() -> None:
    decision = SemanticMatcher(0.9).decide(0.98, "Top 5 Go books?", "Top 10 Go books?")
    assert not decision.hit
    assert decision.reason.startswith("guard: numbers")


def test_guard_can_be_disabled() -> None:
    matcher = SemanticMatcher(0.9, guard_enabled=False)
    assert matcher.decide(0.98, "Top 5 Go books?", "Top 10 Go books?").hit


def test_rules_can_be_narrowed() -> None:
    matcher = SemanticMatcher(0.9, rules=())
    assert matcher.decide(0.98, "Top 5 Go books?", "Top 10 Go books?").hit


@pytest.mark.parametrize("threshold", [1.5, -2.0])
def test_threshold_must_be_a_cosine(threshold: float) -> None:
    with pytest.raises(ValueError):
        SemanticMatcher(threshold)


# --- real embeddings ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(int8=True)  # the semantic cache's default embedder


def similarity(embedder: MiniLMEmbedder, a: str, b: str) -> float:
    vectors = embedder.embed([normalize_question(a), normalize_question(b)])
    return float(vectors[0] @ vectors[1])


def test_paraphrase_is_a_hit_at_the_default_threshold(embedder: MiniLMEmbedder) -> None:
    cached = "How do I become a good software architect?"
    query = "Hi, how can I become a good software architect? Thanks!"
    sim = similarity(embedder, query, cached)
    decision = SemanticMatcher().decide(sim, query, cached)
    assert decision.hit, decision.reason


def test_changed_number_is_blocked_at_the_default_threshold(embedder: MiniLMEmbedder) -> None:
    # After a QQP pair (labelled different) whose vectors are nearly identical.
    cached = "What is a proper gym workout routine for a 164 cm tall boy of age 24 in India?"
    query = "What is a proper gym workout routine for a 164 cm tall boy of age 23 in India?"
    sim = similarity(embedder, query, cached)
    # The embedding alone would serve the answer for the other age ...
    assert sim >= DEFAULT_THRESHOLD
    # ... the guard does not.
    decision = SemanticMatcher().decide(sim, query, cached)
    assert not decision.hit
    assert decision.reason.startswith("guard: numbers")


def test_changed_count_is_blocked_at_a_lower_threshold(embedder: MiniLMEmbedder) -> None:
    cached = "What are the top 5 programming languages to learn for a backend developer?"
    query = "What are the top 10 programming languages to learn for a backend developer?"
    sim = similarity(embedder, query, cached)
    assert sim >= 0.95
    assert SemanticMatcher(0.95, guard_enabled=False).decide(sim, query, cached).hit
    assert not SemanticMatcher(0.95).decide(sim, query, cached).hit


def test_config_default_threshold_is_the_measured_one() -> None:
    from groundgate.cache.semantic import DEFAULT_THRESHOLD
    from groundgate.config_cache import DEFAULT_SEMANTIC_THRESHOLD

    assert DEFAULT_SEMANTIC_THRESHOLD == DEFAULT_THRESHOLD
