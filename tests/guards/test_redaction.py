"""Reversible redaction: typed placeholders, merged overlaps, and the way back."""

from __future__ import annotations

from groundgate.guards.detect import find_sensitive
from groundgate.guards.redaction import Redacted, merge_spans, redact, restore
from groundgate.guards.spans import Span

TEXT = (
    "Reach ana@example.org or +44 20 7946 0958; card 4111 1111 1111 1111. "
    "Again: ana@example.org. Key sk-proj-Q7vK2mZp9XwL4tR8nB3cF6hJ1yD5sG0a."
)


def test_placeholders_are_typed_numbered_and_consistent() -> None:
    result = redact(TEXT, find_sensitive(TEXT))
    assert result.text == (
        "Reach [EMAIL_1] or [PHONE_1]; card [CREDIT_CARD_1]. Again: [EMAIL_1]. Key [SECRET_1]."
    )
    assert result.mapping["[EMAIL_1]"] == "ana@example.org"
    assert result.mapping["[SECRET_1]"].startswith("sk-proj-")


def test_round_trip_restores_an_answer_that_quotes_placeholders() -> None:
    result = redact(TEXT, find_sensitive(TEXT))
    assert restore(result.text, result.mapping) == TEXT
    answer = "I wrote to [EMAIL_1] and will call [PHONE_1]; [UNKNOWN_3] stays."
    assert restore(answer, result.mapping) == (
        "I wrote to ana@example.org and will call +44 20 7946 0958; [UNKNOWN_3] stays."
    )


def test_overlapping_spans_merge_into_one_placeholder() -> None:
    spans = [Span(0, 10, "SECRET"), Span(5, 20, "EMAIL"), Span(30, 35, "IP")]
    assert merge_spans(spans) == [Span(0, 20, "EMAIL"), Span(30, 35, "IP")]
    text = "x" * 40
    assert redact(text, spans).text == "[EMAIL_1]" + "x" * 10 + "[IP_1]" + "x" * 5


def test_a_placeholder_already_in_the_text_is_not_reused() -> None:
    text = "literal [EMAIL_1] then bo@example.org"
    result = redact(text, find_sensitive(text))
    assert result == Redacted("literal [EMAIL_1] then [EMAIL_2]", {"[EMAIL_2]": "bo@example.org"})
    assert restore(result.text, result.mapping) == text


def test_nothing_to_redact() -> None:
    assert redact("plain words", []) == Redacted("plain words", {})
    assert restore("plain [EMAIL_1]", {}) == "plain [EMAIL_1]"
