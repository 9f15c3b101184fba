"""API keys: their format, how they are made, and how a presented secret is checked.

A key is ``gg_<id>_<secret>``:

- ``id``: 12 characters of lowercase base32 (60 random bits). Not secret: it is the lookup
  prefix, stored in clear, shown in listings and logs.
- ``secret``: 43 characters of URL-safe base64, i.e. 32 random bytes (256 bits).

Only ``sha256(secret)`` is stored. A slow password hash (bcrypt, scrypt, argon2) exists to
make guessing a *low-entropy* secret expensive after a database leak; a 256-bit random secret
cannot be guessed at any hashing speed, so a slow hash would buy nothing and would cost every
request tens of milliseconds of CPU (and hand attackers a cheap way to burn it).

:func:`parse_key` is the only door from untrusted input: it checks the length, then one
anchored pattern, and answers ``None`` for anything else, before any store is touched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "gg_"
ID_LENGTH = 12
SECRET_LENGTH = 43
KEY_LENGTH = len(KEY_PREFIX) + ID_LENGTH + 1 + SECRET_LENGTH  # 59

_ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_KEY = re.compile(r"gg_([a-z2-7]{12})_([A-Za-z0-9_-]{43})")
KEY_ID = re.compile(r"[a-z2-7]{12}")


def parse_key(raw: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key; ``None`` for anything else."""
    if not isinstance(raw, str) or len(raw) != KEY_LENGTH:
        return None
    match = _KEY.fullmatch(raw)
    if match is None:
        return None
    return match.group(1), match.group(2)


def is_key_id(value: str) -> bool:
    return isinstance(value, str) and len(value) == ID_LENGTH and bool(KEY_ID.fullmatch(value))


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def secret_digest(secret: str) -> bytes:
    """``hash_secret(secret)`` as ASCII bytes, for a constant-time comparison."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest().encode("ascii")


def verify(secret: str, stored_hash: str) -> bool:
    """Whether ``secret`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(secret_digest(secret), stored_hash.encode("utf-8"))


def generate_key() -> tuple[str, str, str]:
    """A new key: ``(full key, shown once; id; hash of the secret, to store)``."""
    key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH))
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}{key_id}_{secret}", key_id, hash_secret(secret)
