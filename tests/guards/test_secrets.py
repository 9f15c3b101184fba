"""Secret detectors: vendor key formats, assignments, PEM blocks, URL passwords and the
entropy rule, with the ordinary tokens (words, identifiers, UUIDs, digests) it leaves alone.
Every key below is invented for these tests."""

from __future__ import annotations

import pytest

from groundgate.guards.secrets import find_secrets, looks_random, shannon_entropy

RANDOM_62 = "Q7vK2mZp9XwL4tR8nB3cF6hJ1yD5sG0a"  # 32 characters of base62


def secrets_in(text: str) -> list[str]:
    return [text[span.start : span.end] for span in find_secrets(text)]


@pytest.mark.parametrize(
    "key",
    [
        "gg_abcdefgh2345_" + RANDOM_62,
        "sk-ant-api03-" + RANDOM_62,
        "sk-proj-" + RANDOM_62,
        "AKIAZ3MPLE7EXAMPLE2Q",
        "ghp_" + RANDOM_62 + "abcd",
        "github_pat_11ABCDEFG0" + RANDOM_62,
        "xoxb-1234567890-0987654321-" + RANDOM_62[:24],
        "AIzaSy" + RANDOM_62 + "abc",
        "sk_live_" + RANDOM_62[:24],
        "rk_live_" + RANDOM_62[:24],
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlX2hlcmVfMTIz",
    ],
)
def test_known_formats_in_prose(key: str) -> None:
    assert secrets_in(f"here is the key {key} for prod") == [key]


def test_pem_private_key_block_whole() -> None:
    block = (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7vK2mZp9XwL4tR8n\n"
        "B3cF6hJ1yD5sG0aQ7vK2mZp9XwL4\n-----END RSA PRIVATE KEY-----"
    )
    assert secrets_in(f"key:\n{block}\nthanks") == [block]
    cut = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    assert secrets_in(cut) == [cut]


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("postgres://app:hunter2-pw@db.internal:5432/app", "hunter2-pw"),
        ("password=correcthorse", "correcthorse"),
        ('db_password: "s3cr3t!"', "s3cr3t!"),
        ("SECRET_KEY = 'a1b2c3d4e5f6a7b8'", "a1b2c3d4e5f6a7b8"),
        ("serviceToken := 0f8e2d4c6b8a0f1e3d5c7b9a", "0f8e2d4c6b8a0f1e3d5c7b9a"),
        ('headers.set("X-Api-Key", "4c1e9a7b2d6f8e0a")', "4c1e9a7b2d6f8e0a"),
        ("<password>tr0ub4dor&3</password>", "tr0ub4dor&3"),
        ("Authorization: Bearer abc.DEF-123_ghi~456", "abc.DEF-123_ghi~456"),
    ],
)
def test_assignments_and_urls(text: str, secret: str) -> None:
    assert secrets_in(text) == [secret]


def test_a_value_found_by_name_is_found_again_without_it() -> None:
    value = "9f86d081884c7d659a2feaa0c55ad015"  # hex: the entropy rule alone leaves it
    assert secrets_in(f"api token = '{value}' copied from {value}") == [value] * 2


def test_high_entropy_token_without_a_name() -> None:
    assert secrets_in(f"use {RANDOM_62} to log in") == [RANDOM_62]
    padded = "dGhpcyBpcyBub3QgYSByZWFsIGtleSAxMjM0NTY3OA=="
    assert secrets_in(f"blob {padded}") == [padded]


@pytest.mark.parametrize(
    "text",
    [
        "internationalization and counterrevolutionaries are long words",
        "call test_pattern_is_linear_on_pathological_input2 from the suite",
        "request 550e8400-e29b-41d4-a716-446655440000 failed",  # a UUID
        "fixed in commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a digest
        "see /usr/local/lib/python3.12/site-packages/groundgate",  # a path
        "password: $DB_PASS  # never share this password publicly",  # a placeholder, prose
        "token = None",
        "api_key: required",
        "key: primary_id_2",
        "GeoLite2-City_Database_2024-03_release",
        "the release sk-ant is discussed",  # too short to be a key
    ],
)
def test_ordinary_text_is_not_secret(text: str) -> None:
    assert secrets_in(text) == []


def test_entropy_separates_random_from_words() -> None:
    assert shannon_entropy("aaaaaaaa") == 0
    assert shannon_entropy(RANDOM_62) > 4.5
    assert looks_random(RANDOM_62)
    assert not looks_random("configuration_loader_v2_extension")
