"""Rule checks on an answer's text: a JSON Schema it must satisfy, a pattern it must match.

Both run on ``jsonschema_rs``, as the schema guard does (``guards/schema.py``): a dataset's
pattern is applied to what a model wrote, and its engine has a bounded cost (a pattern without
backreferences or lookaround runs in linear time; one with them backtracks at most
``guards.schema.PATTERN_BACKTRACK_LIMIT`` steps, and a match that would need more counts as no
match), so a careless pattern cannot stall a run on a long answer. Python's ``re`` is never
given a dataset's pattern. Patterns use ECMAScript syntax (JSON Schema's ``pattern``), inline
flags such as ``(?i)`` included, and match anywhere in the answer unless anchored with ``^`` and
``$``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import orjson

from groundgate.errors import InvalidRequest
from groundgate.guards.schema import MAX_ERRORS, compile_schema, json_path

MAX_PATTERN_CHARS = 1_000
_FENCE = "```"


@dataclass(frozen=True, slots=True)
class SchemaCheck:
    valid: bool
    errors: tuple[str, ...]  # why not: "not valid JSON: ...", "at $.name: ..."


def _key(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@functools.lru_cache(maxsize=256)
def _schema_validator(canonical: str) -> jsonschema_rs.Validator:
    return compile_schema(json.loads(canonical), "schema")


def check_schema_definition(schema: Any) -> None:
    """Raise ``ValueError`` (with the reason) when ``schema`` is not a usable JSON Schema."""
    try:
        _schema_validator(_key(schema))
    except InvalidRequest as exc:
        raise ValueError(exc.message) from None


def strip_fence(answer: str) -> str:
    """The answer without a Markdown code fence around it (```json ... ```), as models often
    wrap JSON; other text is left as it is."""
    text = answer.strip()
    if text.startswith(_FENCE) and text.endswith(_FENCE) and len(text) >= 2 * len(_FENCE):
        body = text[len(_FENCE) : -len(_FENCE)]
        first, _, rest = body.partition("\n")
        # The fence's info string ("json") is the rest of its first line.
        return (rest if first.strip().isalnum() or not first.strip() else body).strip()
    return text


def schema_check(answer: str, schema: Any) -> SchemaCheck:
    """Whether ``answer`` (a code fence around it allowed) is JSON that satisfies ``schema``."""
    validator = _schema_validator(_key(schema))
    try:
        value = json.loads(strip_fence(answer))
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        return SchemaCheck(False, (f"not valid JSON: {reason}",))
    errors = []
    for error in validator.iter_errors(value):
        errors.append(f"at {json_path(error.instance_path)}: {error.kind.name}")
        if len(errors) >= MAX_ERRORS:
            break
    return SchemaCheck(not errors, tuple(errors))


@functools.lru_cache(maxsize=256)
def _pattern_validator(pattern: str) -> jsonschema_rs.Validator:
    # The schema guard's compiler: the same bounded regex engine and backtrack limit.
    return compile_schema({"type": "string", "pattern": pattern}, "pattern")


def check_pattern_definition(pattern: str) -> None:
    """Raise ``ValueError`` when ``pattern`` is too long or not a regular expression."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"a pattern is at most {MAX_PATTERN_CHARS} characters")
    try:
        _pattern_validator(pattern)
    except InvalidRequest:
        raise ValueError(f"{pattern!r} is not a regular expression") from None


def pattern_matches(answer: str, pattern: str) -> bool:
    """True when ``pattern`` matches somewhere in ``answer`` (bounded cost: module docstring)."""
    return bool(_pattern_validator(pattern).is_valid(answer))
