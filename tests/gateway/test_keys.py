"""Key format, parsing of untrusted input, generation and verification."""

from __future__ import annotations

import hashlib
import re

import pytest

from groundgate.gateway.keys import (
    KEY_LENGTH,
    generate_key,
    hash_secret,
    is_key_id,
    parse_key,
    verify,
)

FORMAT = re.compile(r"gg_[a-z2-7]{12}_[A-Za-z0-9_-]{43}")


def test_generated_key_has_the_documented_format() -> None:
    full, key_id, secret_hash = generate_key()
    assert len(full) == KEY_LENGTH == 59
    assert FORMAT.fullmatch(full)
    assert full.startswith(f"gg_{key_id}_")
    secret = full[len(f"gg_{key_id}_") :]
    assert secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in secret_hash and key_id not in secret_hash


def test_generate_parse_verify_round_trip() -> None:
    for _ in range(200):
        full, key_id, secret_hash = generate_key()
        parsed = parse_key(full)
        assert parsed is not None
        assert parsed[0] == key_id and is_key_id(parsed[0])
        assert verify(parsed[1], secret_hash)


def test_no_two_keys_or_ids_are_equal() -> None:
    generated = [generate_key() for _ in range(2000)]
    assert len({g[0] for g in generated}) == 2000
    assert len({g[1] for g in generated}) == 2000
    assert len({g[2] for g in generated}) == 2000


def test_verify_rejects_a_wrong_secret_or_hash() -> None:
    full, _, secret_hash = generate_key()
    parsed = parse_key(full)
    assert parsed is not None
    _, secret = parsed
    other = ("A" if secret[0] != "A" else "B") + secret[1:]
    assert not verify(other, secret_hash)
    assert not verify(secret, hash_secret(other))
    assert not verify(secret, "")
    assert not verify(secret, secret)  # the secret itself is not its hash
    assert not verify(secret, secret_hash.upper())


def _valid() -> str:
    return generate_key()[0]


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "gg_",
        "' OR '1'='1",
        "gg_abcdefghijkl_' OR '1'='1' --",
        "gg_abcdefghijkl_" + "x" * 30 + "'; DROP TABLE api_keys; --",
        "gg_abcdefghijkl_; DROP TABLE api_keys;--" + "a" * 19,
        "gg_abcdef%ghijk_" + "a" * 43,
        "gg_abcdefghijkl_" + "a" * 42 + "\n",
        "gg_abcdefghijkl_" + "a" * 42 + "\x00",
        "gg_abcdefghijkl_" + "a" * 42 + "é",  # one character, two bytes
        "gg_abcdefghijkl_" + "a" * 42 + "\u0661",  # an Arabic-Indic digit: \w, \d would take it
        "gg_abcdefghijkl_" + "\uff41" * 43,  # fullwidth letters
        "gg_abcdefghijkl_" + "a" * 42 + "=",  # padding is not in the alphabet
        "gg_abcdefghijkl_" + "a" * 42 + "+",  # standard base64, not URL-safe
        "gg_ABCDEFGHIJKL_" + "a" * 43,  # the id is lower case
        "gg_abcdefghijk1_" + "a" * 43,  # base32 has no 0, 1, 8 or 9
        "gg_abcdefghijk8_" + "a" * 43,
        "GG_abcdefghijkl_" + "a" * 43,
        "sk_abcdefghijkl_" + "a" * 43,
        "gg-abcdefghijkl-" + "a" * 43,
        "gg_abcdefghijk_" + "a" * 44,  # right length, id one short
        "gg_abcdefghijklm" + "a" * 43,  # right length, no separator
        " gg_abcdefghijkl_" + "a" * 42,
        "gg_abcdefghijkl_" + "a" * 42 + " ",
        "gg_abcdefghijkl_" + "a" * 44,  # one too long
        "gg_abcdefghijkl_" + "a" * 42,  # one too short
        "x" * 10_000,
        "gg_abcdefghijkl_" + "a" * 10_000,
        "Bearer gg_abcdefghijkl_" + "a" * 43,
    ],
)
def test_parse_rejects_anything_else(raw: str) -> None:
    assert parse_key(raw) is None


def test_parse_rejects_near_misses_of_a_real_key() -> None:
    full = _valid()
    for i in range(len(full)):
        for bad in ("\x00", " ", "'", "é", "\n"):
            assert parse_key(full[:i] + bad + full[i + 1 :]) is None
        assert parse_key(full[:i] + full[i + 1 :]) is None  # a character dropped
        assert parse_key(full[:i] + "a" + full[i:]) is None  # a character added


def test_parse_rejects_non_strings() -> None:
    for value in (None, b"gg_", 59, ["gg_"]):
        assert parse_key(value) is None  # type: ignore[arg-type]


def test_parse_accepts_every_character_of_the_alphabets() -> None:
    key_id = "abcdefghijklmnopqrstuvwxyz234567"[:12]
    secret = ("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" * 2)[:43]
    assert parse_key(f"gg_{key_id}_{secret}") == (key_id, secret)
    assert parse_key(f"gg_{'234567mnopqr'}_{secret[::-1]}") == ("234567mnopqr", secret[::-1])


def test_is_key_id() -> None:
    assert is_key_id("abcdefghijkl")
    for bad in ("", "abcdefghijk", "abcdefghijklm", "ABCDEFGHIJKL", "abcdefghijk1", "' OR 1=1 --"):
        assert not is_key_id(bad)
