"""The redactor: every secret shape the gateway meets, and the secrets it holds by value."""

from __future__ import annotations

import json
import secrets

from groundgate.gateway.keys import generate_key
from groundgate.observe.redact import REDACTED, redact, remember_secret


def test_provider_keys_tokens_and_url_passwords_go() -> None:
    openai, anthropic = "sk-proj-" + secrets.token_hex(16), "sk-ant-api03-" + secrets.token_hex(16)
    line = (
        f"Authorization: Bearer {openai} x-api-key: {anthropic} "
        "dsn=postgresql://groundgate:hunter2-pw@db:5432/gg redis://:s3cret-pw@cache:6379/0"
    )
    cleaned = redact(line)
    for secret in (openai, anthropic, "hunter2-pw", "s3cret-pw"):
        assert secret not in cleaned
    assert "postgresql://groundgate:[REDACTED]@db:5432/gg" in cleaned
    assert redact("nothing secret here: key_id abcdefghijkl") == (
        "nothing secret here: key_id abcdefghijkl"
    )


def test_a_groundgate_key_keeps_its_id_and_loses_its_secret() -> None:
    key, key_id, _ = generate_key()
    assert redact(f"unknown key {key}.") == f"unknown key gg_{key_id}_{REDACTED}."
    assert redact(f"Bearer {key}") == f"Bearer {REDACTED}"


def test_remembered_secrets_go_whatever_their_format() -> None:
    # An admin key is any string of 32+ characters: only its value identifies it.
    admin = "adm:" + secrets.token_hex(16) + '"\\'
    remember_secret(admin)
    assert admin not in redact(f"the admin key is {admin} here")
    as_json = json.dumps({"question": f"is {admin} valid?"})
    assert json.dumps(admin)[1:-1] not in redact(as_json)
    remember_secret("short")  # too likely to be an ordinary word
    assert redact("a short note") == "a short note"
