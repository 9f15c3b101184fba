"""Structured PII: e-mail addresses, phone numbers, card numbers, IBANs and IP addresses.

Each type has a loose candidate pattern and a strict check in Python: card numbers pass the
Luhn check, IBANs the ISO 13616 mod-97 check, IP addresses the ``ipaddress`` parser, and phone
numbers a set of shape rules (dates, social security numbers, versions and bare numbers are not
phones unless the words around them say so). Checks in code rather than in the pattern keep
every pattern linear: bounded repetitions, lookbehinds instead of a leading unbounded class.
"""

from __future__ import annotations

import ipaddress
import re

from groundgate.guards.spans import Span, resolve_overlaps

EMAIL, PHONE, CREDIT_CARD, IBAN, IP = "EMAIL", "PHONE", "CREDIT_CARD", "IBAN", "IP"
PII_TYPES = (EMAIL, PHONE, CREDIT_CARD, IBAN, IP)
# On overlap the more specific, better-checked type wins: a valid IBAN or card number that
# also looks like a phone number is the IBAN or the card.
_PRIORITY = (EMAIL, IBAN, CREDIT_CARD, IP, PHONE)

# The local part may not start inside a word, a URL's "user:password@" or a path.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+\-:/])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}"
    r"@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)
# An optional country code, an optional bracketed area code, then up to six groups of digits
# joined by one separator each, and an optional extension.
_PHONE = re.compile(
    r"(?<![\w.+\-/])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{1,12}(?:[ .-]\d{1,12}){0,6}"
    r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?(?![\w/]|[.-]\d)"
)
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|telephone|call|calls|mobile|cell|fax|desk|office|sms|text|whatsapp|"
    r"contact|reach|dial|registered|messages to|answering at)\b"
)
_CARD = re.compile(r"(?<![\d\-.])\d(?:[ -]?\d){11,18}(?![\d]|[.-]\d)")
_CARD_CONTEXT = re.compile(r"(?i)\b(?:card|visa|mastercard|amex|maestro|cc)\b")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ ]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")

_GROUP_SPLIT = re.compile(r"[^0-9]+")
_PHONE_DIGITS = (7, 15)
_CONTEXT_BEFORE = 40  # characters before a bare number searched for "phone", "card", ...
_CONTEXT_AFTER = 12  # "... 781 1704 office"


def find_pii(text: str) -> list[Span]:
    """Every structured PII span in ``text``, without overlaps, sorted by start."""
    spans: list[Span] = []
    spans += _emails(text)
    spans += _ibans(text)
    spans += _cards(text)
    spans += _ips(text)
    spans += _phones(text)
    return resolve_overlaps(spans, _PRIORITY)


def _emails(text: str) -> list[Span]:
    if "@" not in text:
        return []
    return [Span(m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(text)]


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _context(text: str, start: int, end: int, pattern: re.Pattern[str]) -> bool:
    before = text[max(0, start - _CONTEXT_BEFORE) : start]
    after = text[end : end + _CONTEXT_AFTER]
    return bool(pattern.search(before) or pattern.search(after))


def _cards(text: str) -> list[Span]:
    found = []
    for match in _CARD.finditer(text):
        raw = match.group()
        separators = {c for c in raw if not c.isdigit()}
        digits = "".join(c for c in raw if c.isdigit())
        if len(separators) > 1 or len(set(digits)) == 1 or not luhn_valid(digits):
            continue
        # 12-digit (Maestro) and odd-issuer numbers are too often other numbers: only with
        # the word "card" near them. Issuers start with 1800, 2-6.
        issuer = digits[0] in "23456" or digits.startswith("1800")
        if (len(digits) < 13 or not issuer) and not _context(
            text, match.start(), match.end(), _CARD_CONTEXT
        ):
            continue
        found.append(Span(match.start(), match.end(), CREDIT_CARD))
    return found


def iban_valid(candidate: str) -> bool:
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34 or not compact[:2].isalpha() or not compact[2:4].isdigit():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> list[Span]:
    found = []
    for match in _IBAN.finditer(text):
        raw = match.group()
        # The pattern may run on into a following word or number group ("... 32 is"): try
        # the candidate, then shorter cuts at each space, longest first.
        cuts = [len(raw)] + [i for i in range(len(raw) - 1, 14, -1) if raw[i] == " "]
        for cut in cuts:
            if iban_valid(raw[:cut]):
                found.append(Span(match.start(), match.start() + cut, IBAN))
                break
    return found


def _ips(text: str) -> list[Span]:
    found = []
    if "." in text:
        for match in _IPV4.finditer(text):
            try:
                ipaddress.IPv4Address(match.group())
            except ValueError:
                continue
            found.append(Span(match.start(), match.end(), IP))
    if "::" in text or text.count(":") >= 7:
        for match in _IPV6.finditer(text):
            raw = match.group()
            # "a::b" is a valid address and also C++ or a time: ask for three groups, a digit.
            if sum(1 for group in raw.split(":") if group) < 3 or not any(c.isdigit() for c in raw):
                continue
            try:
                ipaddress.IPv6Address(raw)
            except ValueError:
                continue
            found.append(Span(match.start(), match.end(), IP))
    return found


def _is_date(groups: list[str]) -> bool:
    """Three consecutive groups that read as year-month-day or day-month-year."""
    for i in range(len(groups) - 2):
        a, b, c = (int(g) for g in groups[i : i + 3])
        for year, day in ((a, c), (c, a)):
            if 1900 <= year <= 2099 and 1 <= b <= 12 and 1 <= day <= 31:
                return True
    return False


def _phone_shape(raw: str) -> str:
    """'strong' for a number formatted as a phone number, 'weak' for one that could be any
    number (it needs context words), '' for one that is not a phone number."""
    body = raw
    for mark in ("ext", "x"):
        if mark in body:
            body = body.split(mark, 1)[0]
    digits = "".join(c for c in body if c.isdigit())
    if not _PHONE_DIGITS[0] <= len(digits) <= _PHONE_DIGITS[1]:
        return ""
    international = body.startswith("+") or "(" in body
    groups = [g for g in _GROUP_SPLIT.split(body) if g]
    separators = {c for c in body.strip() if c in " .-"}
    if len(groups) >= 3 and _is_date(groups):
        return ""
    if international:
        return "strong"
    if len(groups) == 1:
        return "weak"
    if separators == {"-"} and len(groups) == 3 and len(groups[1]) == 2:
        return ""  # a US social security number (3-2-4), an ID card or licence number
    if separators == {"."} and (len(groups) < 3 or min(len(g) for g in groups) < 2):
        return ""  # dotted phone numbers use groups of 2-4 digits; versions have single ones
    if separators == {" "} and (
        len(digits) < 9 or len(groups) < 3 or min(len(g) for g in groups) < 2
    ):
        return "weak"  # "17151 2450 Crown St" is a house number and a street number
    if len(separators) > 1:
        return "weak"
    return "strong"


def _phones(text: str) -> list[Span]:
    found = []
    for match in _PHONE.finditer(text):
        shape = _phone_shape(match.group())
        if shape == "strong" or (
            shape == "weak" and _context(text, match.start(), match.end(), _PHONE_CONTEXT)
        ):
            found.append(Span(match.start(), match.end(), PHONE))
    return found
