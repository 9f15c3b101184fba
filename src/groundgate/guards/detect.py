"""Structured PII and secrets in one pass, without overlapping spans."""

from __future__ import annotations

from groundgate.guards.pii import CREDIT_CARD, EMAIL, IBAN, IP, PHONE, find_pii
from groundgate.guards.secrets import SECRET, find_secrets
from groundgate.guards.spans import Span, resolve_overlaps

# Checked formats first (an IBAN or a card number passes a checksum; the entropy rule would
# also call it random), then secrets over the looser shapes (a host in a DSN is the DSN's).
_PRIORITY = (IBAN, CREDIT_CARD, EMAIL, SECRET, IP, PHONE)


def find_sensitive(text: str) -> list[Span]:
    """Every PII and secret span in ``text``, without overlaps, sorted by start."""
    return resolve_overlaps(find_pii(text) + find_secrets(text), _PRIORITY)
