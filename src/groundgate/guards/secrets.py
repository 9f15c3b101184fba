"""Secrets in text: API keys, tokens, private keys and passwords, found three ways.

- **known formats**: vendors' key shapes (Groundgate, OpenAI, Anthropic, AWS, GitHub, Slack,
  Google, Stripe), JWTs, PEM private key blocks, bearer tokens and passwords in URLs;
- **assignments**: a value given to a name that says it is secret (``password=``,
  ``api_key: "..."``, ``beSnappyToken := ...``), whatever the value looks like, placeholders
  (``$DB_PASS``, ``${...}``, ``<your key>``) aside;
- **entropy**: any other long token over the base64 / URL-safe alphabet whose characters are
  random enough (Shannon entropy per character). Ordinary words, identifiers, UUIDs and bare
  hex digests (commit ids, checksums) are left alone here; a hex or UUID value given to a
  secret-sounding name is still caught by the assignment rule.

``observe/redact.py`` scrubs logs and traces with its own small set of shapes (observe is a
lower layer and cannot import this); this module is the fuller detector the guards use.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from groundgate.guards.spans import Span, resolve_overlaps

SECRET = "SECRET"

# Each known shape with the literals one of which it must contain: a substring test costs a
# fraction of a regex scan, and most text holds none of them (the guards scan every message).
_KNOWN = (
    # Groundgate's own keys (gateway/keys.py): gg_, a 12-character base32 id, _, the secret.
    (re.compile(r"gg_[a-z2-7]{12}_[A-Za-z0-9_-]{8,}"), ("gg_",)),
    (re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"), ("sk-ant-",)),  # Anthropic
    # OpenAI and lookalikes
    (re.compile(r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"), ("sk-",)),
    # AWS access key id
    (
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
        ("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    # GitHub tokens
    (
        re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"), ("github_pat_",)),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), ("glpat-",)),  # GitLab
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), ("xox",)),  # Slack
    (re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_]{20,}"), ("hooks.slack.com",)),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), ("AIza",)),  # Google API key
    # Stripe secret / restricted
    (re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), ("k_live_", "k_test_")),
    (re.compile(r"\bnpm_[A-Za-z0-9]{36}"), ("npm_",)),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), ("hf_",)),  # Hugging Face
    # JWT: a base64url JSON header ("{"" is "eyJ"), a payload and a signature.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), ("eyJ",)),
)
# Bearer tokens and scheme://user:password@host: the secret is the captured group.
_BEARER = re.compile(r"(?i)\bbearer\s{1,4}([A-Za-z0-9._~+/=-]{12,})")
_URL_PASSWORD = re.compile(r"://[^\s/:@]{0,64}:([^\s/@]{1,256})@")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY( BLOCK)?-----")
_PEM_END = "-----END "

# A secret-sounding name, up to 24 more name characters (``_KEY_ID``, ``Token``), an
# assignment (=, :, :=, =>, " - " as some logs write, or a comma after a quoted name as in
# ``headers.set("X-Api-Key", "...")``), an optional opening quote or brace, and the value.
_SECRET_NAMES = (
    r"(password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"private[_-]?key|client[_-]?secret|credentials?|auth[_-]?key|key)"
)
# Every name above contains one of these (lower-cased): without one, no assignment can match.
_NAME_STEMS = ("pass", "pwd", "secret", "token", "key", "credential")
_ASSIGNMENT = re.compile(
    r"(?i)" + _SECRET_NAMES + r"[A-Za-z0-9_.-]{0,24}"
    r"(?:[\"'\]][ \t]{0,4}(?:=>|:=|[:=,])|[ \t]{0,4}(?:=>|:=|[:=]|-[ \t]))"
    r"[ \t]{0,4}[\"'{(<]?[ \t]{0,4}"
    r"([^\s\"'`,;<>{}()\[\]|]{4,512})"
)
# The text of an XML element named like a secret (<password>...</password>, Jenkins
# credentials' <secret>{...}</secret>).
_SECRET_ELEMENT = re.compile(r"(?i)<" + _SECRET_NAMES + r"[A-Za-z0-9_-]{0,24}>\{?([^<>{}]{4,2048})")
_PASSWORD_NAMES = ("password", "passwd", "pwd", "passphrase")
_PLACEHOLDER_STARTS = ("$", "%", "{{", "<", "os.", "env", "process.", "getenv", "none", "null")
_ASSIGNED_MIN = 8  # a value for a token/key name shorter than this is a flag or a number
# Parts of an identifier or a path: "langfuse_public_key1", "GeoLite2-City_2024-03",
# "python3.12/site-packages": words with at most a short number, and short numbers.
_IDENTIFIER_PART = re.compile(r"[A-Za-z]{1,16}[0-9]{0,3}|[0-9]{1,4}")
_IDENTIFIER_SEPARATORS = re.compile(r"[_\-./=+]")

_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,1024}={0,3}")
_ENTROPY_MIN_LENGTH = 20
_ENTROPY_BITS = 3.7  # per character; English identifiers and prose stay well below
_HEX = frozenset("0123456789abcdefABCDEF-")


def find_secrets(text: str) -> list[Span]:
    """Every secret span in ``text``, without overlaps, sorted by start."""
    spans: list[Span] = []
    for pattern, needles in _KNOWN:
        if any(needle in text for needle in needles):
            spans += (Span(m.start(), m.end(), SECRET) for m in pattern.finditer(text))
    lowered = text.lower()
    for pattern, needle in ((_BEARER, "bearer"), (_URL_PASSWORD, "://")):
        if needle in lowered:
            spans += (Span(m.start(1), m.end(1), SECRET) for m in pattern.finditer(text))
    spans += _pem_blocks(text)
    if any(stem in lowered for stem in _NAME_STEMS):
        spans += _assignments(text)
    spans += _high_entropy(text)
    return _merge(spans + _repeats(text, spans))


def _repeats(text: str, spans: list[Span]) -> list[Span]:
    """Every other occurrence of a value found secret: a key pasted twice is leaked twice,
    and a hex key found by its name is not found by its shape the second time."""
    found = []
    for value in {text[s.start : s.end] for s in spans}:
        if len(value) < _ASSIGNED_MIN:
            continue
        at = text.find(value)
        while at >= 0:
            found.append(Span(at, at + len(value), SECRET))
            at = text.find(value, at + len(value))
    return found


def _merge(spans: list[Span]) -> list[Span]:
    """Overlapping secret spans become one (a key inside an assignment inside a URL)."""
    merged: list[Span] = []
    for span in sorted(spans):
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end), SECRET)
        else:
            merged.append(span)
    return resolve_overlaps(merged, (SECRET,))


def _pem_blocks(text: str) -> list[Span]:
    found = []
    for match in _PEM_BEGIN.finditer(text):
        end = text.find(_PEM_END, match.end())
        if end < 0:
            stop = len(text)  # a cut block: everything after the header is key material
        else:
            close = text.find("-----", end + len(_PEM_END))
            stop = close + 5 if close >= 0 else len(text)
        found.append(Span(match.start(), stop, SECRET))
    return found


def _assignments(text: str) -> list[Span]:
    found = []
    for pattern in (_ASSIGNMENT, _SECRET_ELEMENT):
        for match in pattern.finditer(text):
            value = match.group(2).strip()
            if value.lower().startswith(_PLACEHOLDER_STARTS):
                continue
            is_password = match.group(1).lower() in _PASSWORD_NAMES
            # A token or key name given a word or an identifier ("token = None", "key:
            # primary_id") is not a secret; a password can be any word.
            if not is_password and (
                len(value) < _ASSIGNED_MIN or value.isalpha() or _is_identifier(value)
            ):
                continue
            start = match.start(2) + match.group(2).index(value)
            found.append(Span(start, start + len(value), SECRET))
    return found


def _is_identifier(token: str) -> bool:
    """Words joined by separators, each maybe with a short number: a name or a path, not a
    key."""
    parts = [part for part in _IDENTIFIER_SEPARATORS.split(token) if part]
    return len(parts) >= 2 and all(_IDENTIFIER_PART.fullmatch(part) for part in parts)


def shannon_entropy(token: str) -> float:
    """Bits per character of ``token``'s own character distribution."""
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def looks_random(token: str) -> bool:
    """A token that reads as generated key material rather than a word, a name or a digest."""
    core = token.strip("=-_")
    if len(core) < _ENTROPY_MIN_LENGTH:
        return False
    if set(core) <= _HEX:
        return False  # digests and UUIDs: too common in ordinary text to flag by shape alone
    has_digit = any(c.isdigit() for c in core)
    has_upper = any(c.isupper() for c in core)
    has_lower = any(c.islower() for c in core)
    if not has_digit or not (has_upper or has_lower) or _is_identifier(core):
        return False  # words, identifiers and plain numbers
    return shannon_entropy(core) >= _ENTROPY_BITS


def _high_entropy(text: str) -> list[Span]:
    return [
        Span(m.start(), m.end(), SECRET) for m in _TOKEN.finditer(text) if looks_random(m.group())
    ]
