"""The output guards' text logic: leaks and deny patterns found (not inside the client's own
placeholders), irreversible placeholders, phantom markers and unsupported sentences removed,
a stream rewritten through a window that keeps split spans whole, held answers rewritten."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from groundgate.config_guards import GuardsConfig
from groundgate.guards.decision import GuardReport
from groundgate.guards.groundedness_check import RememberingEmbedder, judge
from groundgate.guards.grounding import Groundedness, SentenceSupport
from groundgate.guards.output import (
    ABSTENTION,
    Placeholders,
    citation_spans,
    compile_deny,
    find_denied,
    find_leaks,
    withheld_notice,
    without_sentences,
)
from groundgate.guards.output_check import AnswerCheck, Grounding
from groundgate.guards.stream_text import (
    WINDOW,
    HeldBack,
    StreamRewriter,
    rewritten,
    texts_of,
)
from groundgate.providers.base import Chunk

LEAK_TYPES = ("EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP", "SECRET")
EMAIL = "ada.lovelace@example.org"
KEY = "sk-proj-a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuV"
JWT = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0" * 12 + ".c2lnbmF0dXJlc2lnbmF0dXJl"
ANSWER = f"Write to {EMAIL} and use the key {KEY} to sign in. Your own address is [EMAIL_1]."


def leaks(text: str) -> list:  # type: ignore[type-arg]
    return find_leaks(text, LEAK_TYPES, ("[EMAIL_1]",))


def test_leaks_and_denied_matches_skip_the_clients_own_placeholders() -> None:
    found = leaks(ANSWER)
    assert sorted(ANSWER[s.start : s.end] for s in found) == sorted([EMAIL, KEY])
    assert [s.type for s in find_leaks(ANSWER, ("EMAIL",))] == ["EMAIL"]
    deny = compile_deny([r"sign\s+in", r"email"])
    denied = find_denied(ANSWER, deny, ("[EMAIL_1]",))
    # "EMAIL" inside the client's own placeholder is theirs, not the answer's.
    assert [ANSWER[s.start : s.end] for s in denied] == ["sign in"]
    assert [(s.start, s.end) for s in find_denied("SIGN  IN", deny)] == [(0, 8)]


def test_placeholders_are_consistent_and_never_reuse_the_clients() -> None:
    placeholders = Placeholders(("[EMAIL_1]",))
    first = placeholders.rewrite(ANSWER, leaks(ANSWER))
    assert first == (
        "Write to [EMAIL_2] and use the key [SECRET_1] to sign in. Your own address is [EMAIL_1]."
    )
    # The same value, later in the same answer, gets the same placeholder.
    again = f"Again: {EMAIL}."
    assert placeholders.rewrite(again, leaks(again)) == "Again: [EMAIL_2]."


def test_phantom_citations_and_unsupported_sentences_are_cut_cleanly() -> None:
    text = "Paris is the capital [1]. It has 90 bridges [7].\n\nLyon is second [2] [12]."
    spans = citation_spans(text, ["first passage", "second passage"])
    assert Placeholders().rewrite(text, spans) == (
        "Paris is the capital [1]. It has 90 bridges.\n\nLyon is second [2]."
    )
    assert without_sentences(text, ["It has 90 bridges [7]."]) == (
        "Paris is the capital [1]. \n\nLyon is second [2] [12]."
    )
    # Found with the whitespace the splitter normalised; a sentence not there changes nothing.
    assert without_sentences("A b.\n\nC  d.\n\nE f.", ["C d.", "Not there."]) == "A b.\n\nE f."


def sentence(text: str, support: float) -> SentenceSupport:
    return SentenceSupport(text, support, 1.0, 1.0, 0.5, (), support >= 0.9)


def test_a_sentence_saying_the_documents_do_not_answer_is_not_an_unsupported_claim() -> None:
    scored = Groundedness(
        0.3,
        (
            sentence("Employees get 28 days [1].", 1.0),
            sentence("The documents do not mention the CEO.", 0.1),
            sentence("The CEO gets a Porsche.", 0.2),
        ),
        0.9,
    )
    verdict = judge(scored, 0.9)
    assert verdict.unsupported == ("The CEO gets a Porsche.",)
    assert verdict.sentences == 2 and verdict.score == pytest.approx(0.5 * 0.2 + 0.5 * 0.6)
    assert judge(scored, 0.15).unsupported == ()


def stream_through(text: str, sizes: list[int]) -> str:
    placeholders = Placeholders(("[EMAIL_1]",))
    held = HeldBack(leaks, placeholders.rewrite)
    out, i, k = [], 0, 0
    while i < len(text):
        size = sizes[k % len(sizes)]
        out.append(held.feed(text[i : i + size]))
        i, k = i + size, k + 1
    out.append(held.flush())
    return "".join(out)


@pytest.mark.parametrize("sizes", [[1], [3, 7], [13], [50, 1, 2], [400]])
def test_a_stream_redacts_spans_split_across_chunks_as_the_whole_text_would(
    sizes: list[int],
) -> None:
    filler = "Some words that say nothing in particular. " * 12
    text = f"{filler}{ANSWER} Token {JWT} ends. {filler}Call me on +44 20 7946 0958 today."
    expected = Placeholders(("[EMAIL_1]",)).rewrite(text, leaks(text))
    assert JWT not in expected and "[SECRET_2]" in expected and "[PHONE_1]" in expected
    assert stream_through(text, sizes) == expected


def test_the_window_lets_text_out_before_the_end() -> None:
    held = HeldBack(leaks, Placeholders().rewrite)
    out = held.feed("word " * 100)
    # All but the window (cut at a space) went out at once; the rest waits.
    assert out and len(out) >= 500 - WINDOW - 5 and len(out) <= 500 - WINDOW
    # A key longer than the window, arriving in pieces, is held whole, however long.
    assert len(JWT) > WINDOW + 100
    sent = held.feed(" " + JWT[:300])
    assert sent.strip() and "eyJ" not in sent
    sent += held.feed(JWT[300:] + " and more words" * 30)
    assert "eyJ" not in sent and "[SECRET_1] and more" in sent + held.flush()


def chunk(*choices: tuple[int, str | None, str | None], extra: bool = False) -> Chunk:
    return Chunk(
        [
            {"index": i, "delta": {} if c is None else {"content": c}, "finish_reason": f}
            for i, c, f in choices
        ],
        id="c1",
        extra={"abstained": False} if extra else {},
    )


def test_stream_rewriter_keeps_choices_apart_and_flushes_at_each_finish() -> None:
    placeholders = Placeholders()
    rewriter = StreamRewriter(lambda: HeldBack(leaks, placeholders.rewrite))
    pieces = [
        chunk((0, "Mail ada.lovelace@exa", None), (1, "Choice one: ", None)),
        chunk((0, "mple.org now.", None), (1, "bob@example.com", None)),
        chunk((0, None, "stop")),
        chunk((1, " bye", None)),
    ]
    out = [rewriter.rewrite(c) for c in pieces]
    rest = rewriter.rest()
    assert rest is not None and rest.choices[0]["index"] == 1
    texts = texts_of([*out, rest])
    assert texts == {0: "Mail [EMAIL_1] now.", 1: "Choice one: [EMAIL_2] bye"}
    # Choice 0's text went out with its finish, in the chunk that carried it.
    finishing = out[2].choices[0]
    assert finishing == {"index": 0, "delta": {"content": texts[0]}, "finish_reason": "stop"}
    assert rewriter.rest() is None


def test_a_held_answer_carries_its_new_text_in_its_first_chunk() -> None:
    chunks = [chunk((0, "", None)), chunk((0, "Hello ", None)), chunk((0, "there", "stop"))]
    out = rewritten(chunks, {0: "Withheld."}, {0: "content_filter"})
    assert [c.choices[0]["delta"].get("content") for c in out] == ["Withheld.", "", ""]
    assert [c.choices[0]["finish_reason"] for c in out] == [None, None, "content_filter"]
    assert texts_of(chunks) == {0: "Hello there"}  # the originals untouched


def config(**guards: object) -> GuardsConfig:
    return GuardsConfig.model_validate(guards)


@pytest.mark.parametrize(
    ("guards", "expected", "finish", "decisions"),
    [
        ({"leak": "flag"}, ANSWER, None, ["leak=flag"]),
        (
            {"leak": "redact"},
            "Write to [EMAIL_2] and use the key [SECRET_1] to sign in. "
            "Your own address is [EMAIL_1].",
            None,
            ["leak=redact"],
        ),
        ({"leak": "block"}, withheld_notice("leak"), "content_filter", ["leak=block"]),
        ({"leak": "review"}, ANSWER, None, ["leak=review"]),
        (
            {"leak": {"action": "block", "types": ["PHONE"]}, "policy": "off"},
            ANSWER,
            None,
            [],
        ),
        (
            {"policy": {"action": "redact", "deny": [r"sign\s+in"]}},
            ANSWER.replace("sign in", "[POLICY_1]"),
            None,
            ["policy=redact"],
        ),
        (
            {"leak": "block", "policy": {"action": "block", "deny": ["key"]}},
            withheld_notice("leak"),
            "content_filter",
            ["leak=block", "policy=block"],
        ),
    ],
)
async def test_answer_check_applies_each_action_to_a_whole_answer(
    guards: dict[str, object], expected: str, finish: str | None, decisions: list[str]
) -> None:
    report = GuardReport()
    check = AnswerCheck(config(**guards), report, None, ("[EMAIL_1]",))
    result = await check.whole({0: ANSWER}, deadline=float("inf"))
    assert result.texts == {0: expected}
    assert result.finish == ({0: finish} if finish else {})
    assert report.header() == ",".join(decisions)
    # Never the text found: counts by type.
    for decision in report.decisions:
        assert EMAIL not in str(decision.to_dict()) and KEY not in str(decision.to_dict())


PASSAGES = [
    "Vacation policy\nEmployees receive 28 days of paid vacation per year.",
    "Expense policy\nHotel costs are capped at 180 euros per night.",
]
GROUNDED = Grounding([p.split("\n")[1] for p in PASSAGES], PASSAGES, "How many vacation days?")
INVENTED = f"The CEO Bob Smith gets 45 days, mail {EMAIL}."
GROUNDED_ANSWER = f"Employees receive 28 days of paid vacation per year [1]. {INVENTED} [7]"


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("flag", f"Employees receive 28 days of paid vacation per year [1]. {INVENTED}"),
        ("remove", "Employees receive 28 days of paid vacation per year [1]."),
        ("abstain", ABSTENTION),
    ],
)
async def test_answer_check_scores_a_grounded_answer(action: str, expected: str) -> None:
    report = GuardReport()
    check = AnswerCheck(config(groundedness=action), report, GROUNDED)
    result = await check.whole({0: GROUNDED_ANSWER}, deadline=float("inf"))
    assert result.texts == {0: expected}
    assert result.abstained == (action == "abstain")
    assert report.header() == f"citations=remove,groundedness={action}"
    assert report.groundedness is not None and report.groundedness < 0.5
    # Reported without the e-mail address in it (it goes to the trace).
    assert report.unsupported == ["The CEO Bob Smith gets 45 days, mail [EMAIL_1]."]
    assert report.checked_ms["groundedness"] > 0


async def test_a_scorer_past_the_deadline_leaves_the_answer_unchecked_and_says_so() -> None:
    report = GuardReport()
    check = AnswerCheck(config(groundedness="abstain"), report, GROUNDED)
    result = await check.whole({0: GROUNDED_ANSWER}, deadline=0.0)
    assert result.texts == {0: GROUNDED_ANSWER.removesuffix(" [7]")}
    assert report.header() == "citations=remove,groundedness=unchecked"
    assert report.groundedness is None


class CountingEmbedder:
    """Vectors that say which text they are for, and what was asked of it."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.asked.append(list(texts))
        return np.array([[len(t), ord(t[0])] for t in texts], dtype=np.float32)


def test_the_scorers_embedder_embeds_each_recent_sentence_once() -> None:
    inner = CountingEmbedder()
    embedder = RememberingEmbedder(inner, size=3)
    first = embedder.embed(["aa", "b", "aa"])
    assert first.tolist() == [[2, 97], [1, 98], [2, 97]] and inner.asked == [["aa", "b"]]
    assert embedder.embed(["b", "ccc"]).tolist() == [[1, 98], [3, 99]]
    assert inner.asked[-1] == ["ccc"]
    embedder.embed(["dddd"])  # "aa" was used least recently: forgotten
    embedder.embed(["aa", "b"])
    assert inner.asked[-1] == ["aa"]
