from __future__ import annotations

from typing import Any

import pytest

from groundgate.config import LocalModelConfig
from groundgate.providers.local.answerer import (
    MAX_CANDIDATES,
    NO_ANSWER,
    NO_CONTEXT,
    NO_QUESTION,
    ExtractiveAnswerer,
)
from groundgate.providers.local.embedder import MiniLMEmbedder
from groundgate.providers.local.sentences import (
    context_sentences,
    question_and_context,
    split_sentences,
    split_sources,
)

# -- sentences -------------------------------------------------------------------------------


def test_splitter_keeps_abbreviations_initials_and_decimals_together() -> None:
    text = (
        "Dr. Smith earned 3.5 million dollars in 2020. He lives in the U.S. with his family. "
        "Fruits, e.g. apples and pears, are sweet. J. R. R. Tolkien wrote books etc. The end! "
        "It costs approx. five euros. Is it true? Meet at 5 p.m. tomorrow."
    )
    assert split_sentences(text) == [
        "Dr. Smith earned 3.5 million dollars in 2020.",
        "He lives in the U.S. with his family.",
        "Fruits, e.g. apples and pears, are sweet.",
        "J. R. R. Tolkien wrote books etc.",
        "The end!",
        "It costs approx. five euros.",
        "Is it true?",
        "Meet at 5 p.m. tomorrow.",
    ]


def test_splitter_handles_newlines_bullets_and_quotes() -> None:
    text = (
        "Opening hours\n"
        "The shop opens at nine and it closes in the evening unless it is\n"
        "a public holiday.\n"
        "- Cash is accepted\n"
        "* Cards too\n"
        "1. First step\n"
        '2) Second step\nHe said "Stop." Then he left.'
    )
    assert split_sentences(text) == [
        "Opening hours",
        "The shop opens at nine and it closes in the evening unless it is a public holiday.",
        "Cash is accepted",
        "Cards too",
        "First step",
        "Second step",
        'He said "Stop."',
        "Then he left.",
    ]


def test_numbered_sources_span_lines_and_skip_the_preamble() -> None:
    context = (
        "Answer from the sources below.\n\n"
        "[1] Paris: Paris is the capital.\nIt is big.\n"
        "[2] Berlin: Berlin is in Germany.\n\n"
        "[3] Rome is old."
    )
    assert split_sources(context) == [
        (1, "Paris: Paris is the capital.\nIt is big."),
        (2, "Berlin: Berlin is in Germany."),
        (3, "Rome is old."),
    ]


def test_paragraphs_are_sources_when_nothing_is_numbered() -> None:
    assert split_sources("One.\n\nTwo.\n   \nThree.\n\n\n") == [
        (1, "One."),
        (2, "Two."),
        (3, "Three."),
    ]


def test_titles_are_not_quoted_but_resolve_pronouns() -> None:
    context = "[1] Title: Marie Curie\nText: She won two Nobel Prizes.\n[2] Paris: It is big."
    sentences = context_sentences(context)
    assert [(s.source, s.text) for s in sentences] == [
        (1, "She won two Nobel Prizes."),
        (2, "It is big."),
    ]
    assert sentences[0].resolved == "Marie Curie won two Nobel Prizes."
    assert sentences[1].resolved == "Paris is big."


def test_pronouns_do_not_cross_numbered_sources() -> None:
    sentences = context_sentences("[1] Python is a language.\n[2] It was released in 1991.")
    assert sentences[1].resolved == "It was released in 1991."


def test_question_is_last_user_message_and_context_includes_tools() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Context one."},
        {"role": "developer", "content": [{"type": "text", "text": "Context two."}]},
        {"role": "user", "content": [{"type": "text", "text": "First?"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "x", "content": "Tool result."},
        {"role": "user", "content": [{"type": "image_url"}, {"type": "text", "text": "Second?"}]},
    ]
    assert question_and_context(messages) == (
        "Second?",
        "Context one.\n\nContext two.\n\nTool result.",
    )


# -- answering -------------------------------------------------------------------------------

FRANCE = (
    "[1] France: Paris is the capital and largest city of France. "
    "The city is known for the Eiffel Tower.\n"
    "[2] Paris population: About 2.1 million people live in Paris proper. "
    "The wider metropolitan area has over 12 million inhabitants.\n"
    "[3] Cuisine: French cuisine is famous for its cheeses, wines and pastries such as croissants."
)
PYTHON = (
    "Python is a high-level programming language created by Guido van Rossum. "
    "It was first released in 1991.\n\n"
    "Python uses indentation to delimit code blocks instead of curly braces.\n\n"
    "The Python Package Index (PyPI) hosts hundreds of thousands of third-party packages, "
    "e.g. NumPy and Django."
)
SHOP = (
    "The office is open Monday to Friday from 9 a.m. to 5 p.m. "
    "Visitors must sign in at the front desk.\n\n"
    "Refunds are issued within 14 days of receiving the returned item. "
    "Items must be unused and in their original packaging.\n\n"
    "Shipping within the EU takes 3 to 5 business days. Express delivery costs 12.50 euros."
)
CURIE = (
    "Marie Curie was a Polish and naturalised-French physicist and chemist. "
    "She conducted pioneering research on radioactivity.\n\n"
    "She was the first woman to win a Nobel Prize, and the only person to win Nobel Prizes in "
    "two scientific fields.\n\n"
    "She died in 1934 from aplastic anaemia, likely caused by exposure to radiation."
)

# (question, context, a phrase the answer must quote and its source number, or None: abstain)
CASES = [
    ("What is the capital of France?", FRANCE, ("capital and largest city", 1)),
    ("How many people live in Paris?", FRANCE, ("2.1 million", 2)),
    ("What food is France famous for?", FRANCE, ("cheeses", 3)),
    ("Who created Python?", PYTHON, ("Guido van Rossum", 1)),
    ("When was Python first released?", PYTHON, ("1991", 1)),
    ("How does Python delimit blocks of code?", PYTHON, ("indentation", 2)),
    ("When is the office open?", SHOP, ("Monday to Friday", 1)),
    ("How long do refunds take?", SHOP, ("14 days", 2)),
    ("How much does express delivery cost?", SHOP, ("12.50 euros", 3)),
    ("What did Marie Curie research?", CURIE, ("radioactivity", 1)),
    ("How did Marie Curie die?", CURIE, ("aplastic anaemia", 3)),
    ("What is the boiling point of water?", FRANCE, None),
    ("Who won the 2018 football World Cup?", PYTHON, None),
    ("What is the population of Berlin?", FRANCE, None),
    ("How do I reset my password?", SHOP, None),
    ("What is the speed of light in vacuum?", CURIE, None),
    ("Which programming language did Marie Curie use?", PYTHON, None),
    ("What is the GDP of Germany?", SHOP, None),
    ("Who is the president of the United States?", FRANCE, None),
]


@pytest.fixture(
    scope="module", params=[LocalModelConfig().min_support, 0.40], ids="support={}".format
)
def answerer(request: pytest.FixtureRequest, embedder: MiniLMEmbedder) -> ExtractiveAnswerer:
    # The configured default and the value we recommend must both pass the whole table.
    return ExtractiveAnswerer(embedder.embed, min_support=request.param, max_sentences=3)


@pytest.mark.parametrize(("question", "context", "expected"), CASES, ids=[c[0] for c in CASES])
def test_answers_from_the_right_sentence_or_abstains(
    answerer: ExtractiveAnswerer,
    question: str,
    context: str,
    expected: tuple[str, int] | None,
) -> None:
    answer = answerer.answer(question, context)
    if expected is None:
        assert answer.abstained
        assert answer.text == NO_ANSWER
        assert answer.citations == []
        return
    phrase, source = expected
    assert not answer.abstained
    assert phrase in answer.text
    quoting = [c for c in answer.citations if phrase in c.snippet]
    assert quoting and quoting[0].index == source
    assert f"[{source}]" in answer.text
    assert all(c.score >= answerer.min_support for c in answer.citations)


def test_citation_marker_goes_before_the_final_punctuation(answerer: ExtractiveAnswerer) -> None:
    answer = answerer.answer("What is the capital of France?", FRANCE)
    assert answer.text.startswith("Paris is the capital and largest city of France [1].")
    # The quote is exact: the title "France:" is not part of it.
    assert answer.citations[0].snippet == "Paris is the capital and largest city of France."


def test_abbreviation_at_the_end_is_kept_whole(answerer: ExtractiveAnswerer) -> None:
    answer = answerer.answer("When is the office open?", SHOP)
    assert "from 9 a.m. to 5 p.m. [1]" in answer.text


def test_sentences_are_quoted_in_document_order(embedder: MiniLMEmbedder) -> None:
    context = (
        "[1] The museum opens at 10 o'clock on weekdays.\n"
        "[2] Tickets for the museum cost 15 euros for adults.\n"
        "[3] The museum opens at 9 o'clock on weekends and holidays."
    )
    answerer = ExtractiveAnswerer(embedder.embed, min_support=0.35, max_sentences=3)
    answer = answerer.answer("When does the museum open?", context)
    indexes = [c.index for c in answer.citations]
    assert indexes == sorted(indexes) and {1, 3} <= set(indexes)
    assert answer.text.index("[1]") < answer.text.index("[3]")


def test_max_sentences_caps_the_answer(embedder: MiniLMEmbedder) -> None:
    context = "\n".join(f"[{i}] The museum opens at {i} o'clock on day {i}." for i in range(1, 7))
    answerer = ExtractiveAnswerer(embedder.embed, min_support=0.1, max_sentences=2)
    answer = answerer.answer("When does the museum open?", context)
    assert len(answer.citations) == 2


@pytest.mark.parametrize("greeting", ["Hello!", "hi there", "Thanks a lot!", "Good morning", ""])
def test_small_talk_gets_a_polite_abstention(answerer: ExtractiveAnswerer, greeting: str) -> None:
    answer = answerer.answer(greeting, FRANCE)
    assert answer.abstained and answer.text == NO_QUESTION


def test_no_context_says_so(answerer: ExtractiveAnswerer) -> None:
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    answer = answerer.answer_messages(messages)
    assert answer.abstained and answer.text == NO_CONTEXT and answer.citations == []


def test_huge_context_still_finds_the_answer(answerer: ExtractiveAnswerer) -> None:
    filler = " ".join(f"Report {i} lists routine maintenance of pump {i}." for i in range(300))
    assert len(split_sentences(filler)) > MAX_CANDIDATES
    context = filler + "\n\nThe reactor was shut down on 4 March 2021 for refuelling."
    answer = answerer.answer("When was the reactor shut down?", context)
    assert not answer.abstained
    assert "4 March 2021" in answer.text and answer.citations[0].index == 2
