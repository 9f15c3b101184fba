"""Secrets scrubbed from text before it is written anywhere (logs, traces, error bodies).

Two nets, because neither alone is enough:

- **by shape**: Groundgate's own keys (``gg_<id>_<secret>``: the id is kept, it is the
  non-secret lookup prefix that listings and logs show; the secret goes), OpenAI/Anthropic-style
  keys, bearer tokens, ``api_key=...``-style fields, credentials in a URL's query
  (``?key=``, ``&token=``) and passwords in URLs;
- **by value**: the secrets this process holds (the admin key, provider keys, read from the
  environment) are remembered when read, and replaced wherever they appear, whatever their
  format (an admin key is any string of 32+ characters).

Every pattern is linear: literal prefixes and single character classes, no nested repetition.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

REDACTED = "[REDACTED]"
# Shorter values are too likely to be ordinary words to replace everywhere.
_MIN_REMEMBERED = 12


@dataclass(frozen=True, slots=True)
class _Shape:
    pattern: re.Pattern[str]
    replacement: str
    # Cheap guards, tried on the lower-cased text first: most text holds none of them, and a
    # substring test costs a fraction of a regex scan (traces are redacted on every request).
    needles: tuple[str, ...]


_SHAPES = (
    # Before the key shapes, so "Bearer <any key>" becomes "Bearer [REDACTED]" in one piece.
    _Shape(re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1{REDACTED}", ("bearer",)),
    # Groundgate's key format (gateway/keys.py, which observe may not import): gg_, a 12
    # character base32 id, _, the secret. Any tail counts, even a cut one. No word boundary
    # in front: "token_gg_..." holds a key too.
    _Shape(re.compile(r"gg_([a-z2-7]{12})_[A-Za-z0-9_-]+"), rf"gg_\1_{REDACTED}", ("gg_",)),
    _Shape(
        re.compile(r"\b(?:sk|gg|pk|rk)-[A-Za-z0-9_-]{8,}"),
        REDACTED,
        ("sk-", "gg-", "pk-", "rk-"),
    ),
    _Shape(
        re.compile(
            r"(?i)((?:x-api-key|api[_-]?key|authorization)[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"',}]+"
        ),
        rf"\1{REDACTED}",
        ("api", "authorization"),
    ),
    # Credentials in a URL's query (``?key=...``, ``&access_token=...``): what a client or an
    # upstream (Gemini takes ``?key=``) puts there ends up in access lines and errors.
    _Shape(
        re.compile(
            r"(?i)([?&](?:key|token|access_token|auth|secret|password|sig|signature)=)"
            r"[^&\s\"'#]+"
        ),
        rf"\1{REDACTED}",
        ("key=", "token=", "auth=", "secret=", "password=", "sig=", "signature="),
    ),
    # scheme://user:password@host: a DSN or a Redis URL in an error message. Anchored on the
    # literal "://" (a scheme pattern in front would rescan every run of letters).
    _Shape(re.compile(r"(://[^\s/:@]*:)[^\s/@]+@"), rf"\1{REDACTED}@", ("://",)),
)

# Longest first, so a secret that contains another is replaced whole. A process holds a
# handful (the admin key, one per provider): plain substring tests beat one big regex.
_remembered: list[str] = []


def remember_secret(value: str | None) -> None:
    """Redact this exact value from now on, wherever it appears."""
    if not value or len(value) < _MIN_REMEMBERED or value in _remembered:
        return
    # Also as it reads inside a JSON string (a trace), should it hold a quote or a backslash.
    as_json = json.dumps(value, ensure_ascii=False)[1:-1]
    _remembered.extend({value, as_json})
    _remembered.sort(key=len, reverse=True)


def redact(text: str) -> str:
    for secret in _remembered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    lowered = text.lower()
    for shape in _SHAPES:
        if any(needle in lowered for needle in shape.needles):
            text = shape.pattern.sub(shape.replacement, text)
    return text


def suspect(text: str) -> bool:
    """Whether ``redact`` could change ``text``: a cheap test that lets a caller that scrubs
    many small parts (a JSON log line's values) skip them all when the whole holds nothing."""
    if any(secret in text for secret in _remembered):
        return True
    lowered = text.lower()
    return any(needle in lowered for shape in _SHAPES for needle in shape.needles)
