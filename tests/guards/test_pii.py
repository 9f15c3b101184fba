"""Structured PII detectors: each type found in its usual formats, and the look-alikes
(dates, versions, licence numbers, failed checksums) left alone."""

from __future__ import annotations

import pytest

from groundgate.guards.pii import find_pii, iban_valid, luhn_valid


def found(text: str) -> list[tuple[str, str]]:
    return [(span.type, text[span.start : span.end]) for span in find_pii(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "write to jo.doe+news@mail.example.co.uk today",
            ("EMAIL", "jo.doe+news@mail.example.co.uk"),
        ),
        ("Phone: +33 1 42 68 53 00", ("PHONE", "+33 1 42 68 53 00")),
        ("call (415) 555-0132 after six", ("PHONE", "(415) 555-0132")),
        ("office 020-7946-0958 ext 12", ("PHONE", "020-7946-0958 ext 12")),
        ("le 06.12.34.56.78 est mon portable", ("PHONE", "06.12.34.56.78")),
        ("Mobile: 4155550132", ("PHONE", "4155550132")),
        ("card 4111 1111 1111 1111 expires", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("amex 3782-822463-10005 on file", ("CREDIT_CARD", "3782-822463-10005")),
        ("pay to GB82 WEST 1234 5698 7654 32 by Friday", ("IBAN", "GB82 WEST 1234 5698 7654 32")),
        ("iban de89370400440532013000.", ("IBAN", "de89370400440532013000")),
        ("from 203.0.113.54 at noon", ("IP", "203.0.113.54")),
        ("peer 2001:db8:85a3::8a2e:370:7334 dropped", ("IP", "2001:db8:85a3::8a2e:370:7334")),
    ],
)
def test_each_type_is_found(text: str, expected: tuple[str, str]) -> None:
    assert found(text) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "released on 2024-03-15 at 10:42:07",  # a date and a time
        "upgrade to 10.0.19041.1 first",  # a version with four parts, one invalid as IP
        "SSN 123-45-6789 on the form",  # social security number shape
        "licence 2210-45-8890 renewed",
        "the order 12345678 shipped",  # a bare number without phone words
        "we sold 1 250 000 units",  # a thousands-separated amount
        "the house at 18204 2711 Elm Road",  # house and street numbers
        "card 4111 1111 1111 1112 declined",  # fails Luhn
        "address 999.12.4.1 is not one",  # not an IPv4 address
        "std::vector and a::b are C++",  # valid-looking IPv6 fragments
        "user:pw@db.example.com",  # a URL's credentials, not an e-mail address
    ],
)
def test_look_alikes_are_not_pii(text: str) -> None:
    assert found(text) == []


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111121")
    assert iban_valid("GB82 WEST 1234 5698 7654 32") and iban_valid("DE89370400440532013000")
    assert not iban_valid("DE89370400440532013001")
    assert not iban_valid("GB82")


def test_a_twelve_digit_card_needs_the_word_card() -> None:
    assert found("my card number is 501800000009") == [("CREDIT_CARD", "501800000009")]
    assert found("tracking 501800000009") == []


def test_an_iban_is_cut_before_the_words_after_it() -> None:
    text = "IBAN GB82 WEST 1234 5698 7654 32 is my account"
    assert found(text) == [("IBAN", "GB82 WEST 1234 5698 7654 32")]


def test_a_failed_iban_is_not_an_iban() -> None:
    assert "IBAN" not in {kind for kind, _ in found("ref GB82 WEST 1234 5698 7654 33")}


def test_spans_are_code_points_in_non_ascii_text() -> None:
    text = "Größe 漢字: schreib an zoe@beispiel.de"
    (span,) = find_pii(text)
    assert (span.start, span.end) == (len("Größe 漢字: schreib an "), len(text))
