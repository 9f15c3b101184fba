"""Logging set-up: one line per event, as text or as JSON, scrubbed of secrets before anything
is written — every line of every logger (uvicorn's and the libraries' included), whatever
level: the formatters here are the only ones the root handler has.

Structured fields travel on a record as ``extra={"fields": {...}}`` (see :func:`log_fields`):
the JSON form puts them at the top level of the line, the text form appends ``key=value``.
Each string is redacted on its own before it is encoded, so a scrubbed value can never break
the JSON around it.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Literal

import orjson

from groundgate.observe.redact import redact, suspect

FIELDS = "fields"  # the LogRecord attribute that carries structured fields
# Loggers whose own handlers are dropped so their lines reach the root handler (and its
# redacting formatter) instead of being written raw.
_THIRD_PARTY = ("uvicorn", "uvicorn.error", "uvicorn.access")


def log_fields(logger: logging.Logger, level: int, message: str, fields: dict[str, Any]) -> None:
    """Log ``message`` with structured ``fields`` (values: str, int, float, bool, None, or a
    flat dict of those)."""
    logger.log(level, message, extra={FIELDS: fields})


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, FIELDS, None)
    return fields if isinstance(fields, dict) else {}


class RedactingFormatter(logging.Formatter):
    """Text: ``time LEVEL logger: message key=value ...``, the whole line scrubbed."""

    def __init__(self, fmt: str = "%(asctime)s %(levelname)s %(name)s: %(message)s") -> None:
        super().__init__(fmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if fields:
            extra = " ".join(f"{k}={_text(v)}" for k, v in fields.items() if v is not None)
            first, newline, rest = line.partition("\n")  # a traceback stays below
            line = f"{first} {extra}{newline}{rest}"
        return redact(line)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items() if v is not None)
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    text = str(value)
    return orjson.dumps(text).decode() if (" " in text or not text) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, the
    record's fields, and ``exc_type``/``exc`` for an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            line["exc_type"] = type(record.exc_info[1]).__name__
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        encoded = orjson.dumps(line, default=str).decode()
        # Most lines hold nothing to scrub: one test of the whole line spares scrubbing each
        # value (which is done before encoding, so a scrubbed value cannot break the JSON).
        if not suspect(encoded):
            return encoded
        return orjson.dumps(_scrub(line), default=str).decode()


def _iso(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def configure_logging(level: str = "info", form: Literal["text", "json"] = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if form == "json" else RedactingFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _THIRD_PARTY:
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
