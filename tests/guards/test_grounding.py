"""The groundedness scorer: supported sentences score above invented ones, phantom [n]
markers are found, and scores line up with the answer's sentences."""

from __future__ import annotations

import pytest

from groundgate.guards.grounding import (
    THRESHOLD,
    GroundednessScorer,
    phantom_citations,
    remove_phantom_citations,
)

PASSAGES = [
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It is 330 metres tall.",
    "Gustave Eiffel's company designed and built the tower.",
]


@pytest.fixture(scope="module")
def scorer() -> GroundednessScorer:
    return GroundednessScorer()


def test_supported_answer_outscores_invented_number_and_name(scorer: GroundednessScorer) -> None:
    supported = scorer.score(PASSAGES, "The Eiffel Tower was completed in 1889 [1].")
    invented = scorer.score(PASSAGES, "The Eiffel Tower was completed in 1912 by Henri Labrouste.")
    assert supported.grounded and supported.score >= THRESHOLD
    assert not invented.grounded
    assert supported.score > invented.score
    assert set(invented.sentences[0].novel) == {"1912", "Henri", "Labrouste"}
    assert invented.unsupported == ["The Eiffel Tower was completed in 1912 by Henri Labrouste."]


def test_sentence_scores_align_with_sentences(scorer: GroundednessScorer) -> None:
    answer = (
        "The tower was completed in 1889 for the World's Fair. "
        "It was painted gold by Napoleon in 1950. "
        "Gustave Eiffel's company designed and built the tower."
    )
    result = scorer.score(" \n\n".join(PASSAGES), answer)
    texts = [s.text for s in result.sentences]
    assert texts == [
        "The tower was completed in 1889 for the World's Fair.",
        "It was painted gold by Napoleon in 1950.",
        "Gustave Eiffel's company designed and built the tower.",
    ]
    supported = [s.supported for s in result.sentences]
    assert supported == [True, False, True]
    assert result.unsupported == [texts[1]]
    assert result.score < THRESHOLD  # the invented sentence sinks the answer


def test_phantom_citations_found_and_removed() -> None:
    answer = "Paris [1]. Built in 1889 [3]. Tall [2][7]."
    assert [n for _, _, n in phantom_citations(answer, PASSAGES)] == [3, 7]
    assert remove_phantom_citations(answer, PASSAGES) == "Paris [1]. Built in 1889. Tall [2]."
    # A context string is numbered by its own [n] markers.
    context = "[4] The tower is in Paris.\n[5] It opened in 1889."
    assert [n for _, _, n in phantom_citations("See [4], [5] and [1].", context)] == [1]


def test_answer_without_sentences_is_trivially_grounded(scorer: GroundednessScorer) -> None:
    result = scorer.score(PASSAGES, "   ")
    assert result.sentences == () and result.grounded
