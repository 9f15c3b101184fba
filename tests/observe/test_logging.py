"""The log formatters: JSON lines that stay valid JSON once scrubbed, text lines with their
fields, and no secret in either — messages, fields and tracebacks alike."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from groundgate.observe.logging import JsonFormatter, RedactingFormatter, log_fields

SECRET = "sk-proj-" + "s3cr3t" * 6


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, logging.StreamHandler[io.StringIO]]]:
    logger = logging.getLogger("groundgate.test_logging")
    handler = logging.StreamHandler(io.StringIO())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield logger, handler
    finally:
        logger.removeHandler(handler)


def test_json_lines_stay_json_and_lose_their_secrets(
    captured: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = captured
    handler.setFormatter(JsonFormatter())
    # A quoted value: scrubbing the encoded line would eat the backslash of \" and break it.
    logger.debug('config api_key="%s" loaded', SECRET)
    log_fields(logger, logging.INFO, "GET /x 200", {"route": f"/x/{SECRET}", "status": 200})
    try:
        raise RuntimeError(f"upstream said: Authorization: Bearer {SECRET}")
    except RuntimeError:
        logger.exception("call failed")
    text = handler.stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert len(lines) == 3 and SECRET not in text and "s3cr3t" not in text
    assert lines[1]["status"] == 200 and lines[1]["route"] == "/x/[REDACTED]"
    assert lines[2]["exc_type"] == "RuntimeError" and "Traceback" in lines[2]["exc"]
    assert lines[0]["level"] == "debug" and lines[0]["logger"] == "groundgate.test_logging"


def test_text_lines_carry_their_fields_scrubbed(
    captured: tuple[logging.Logger, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, handler = captured
    handler.setFormatter(RedactingFormatter())
    log_fields(
        logger,
        logging.INFO,
        "POST /v1/chat/completions 401",
        {"status": 401, "duration_ms": 1.5, "error": {"code": "invalid_api_key"}, "key": SECRET},
    )
    line = handler.stream.getvalue()
    assert "status=401 duration_ms=1.5 error=code:invalid_api_key key=[REDACTED]" in line
    assert SECRET not in line
