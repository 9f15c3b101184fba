"""Structured answers checked: ``response_format`` json_object / json_schema, and tool-call
arguments against their tool's ``parameters``.

:func:`answer_checker` turns a request's parameters into an :class:`AnswerChecker` (or None:
nothing to check), compiling each schema once and keeping it, by content, for the requests
that send it again. A schema that is not JSON Schema is the client's error
(:class:`InvalidRequest`, naming the parameter), found before anything is sent upstream.

The schemas come from clients and are applied to what a model wrote, so the engine is
``jsonschema_rs``: its regular expressions have a bounded cost (a client's ``pattern`` cannot
stall the event loop on a long answer), and ``$ref`` is resolved within the schema only, when
it is compiled (nothing is fetched: a client cannot make the gateway call a URL).

Errors are short: where (``content``, a tool call's arguments), a JSON path, and what is wrong,
with the offending value left out (an answer's text stays out of traces and error bodies).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import orjson

from groundgate.errors import InvalidRequest

# The most errors one check reports (the first ones found; enough to correct an answer).
MAX_ERRORS = 5
# The longest error message, in characters (a schema's own text can be long).
_MAX_MESSAGE = 200
# Compiled checkers kept for requests that send the same formats and tools again.
_CACHE_SIZE = 256
# A client's pattern with backreferences or lookaround backtracks at most this much per match
# (patterns without them run in linear time).
PATTERN_BACKTRACK_LIMIT = 100_000
_PATTERNS = jsonschema_rs.FancyRegexOptions(backtrack_limit=PATTERN_BACKTRACK_LIMIT)
# Keywords whose values are data, not schemas (a ``$ref`` string inside one is just a string).
_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})
# Keywords that hold one schema, a map of schemas, or a list of them (OpenAI's strict mode
# closes every object found through them).
_ONE_SCHEMA = (
    "items",
    "additionalProperties",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("prefixItems", "anyOf", "allOf", "oneOf")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_JSON_TYPES = ("json_object", "json_schema")


def wants_check(params: Mapping[str, Any]) -> bool:
    """Whether a request asks for a structured answer (cheap: for every request)."""
    response_format = params.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in _JSON_TYPES:
        return True
    return bool(params.get("tools"))


@dataclass(frozen=True, slots=True)
class AnswerChecker:
    """What one request's answer must be. ``content``: None (free text), or the validator
    its content must pass (``json_object``: any JSON object). ``tools``: each declared
    tool's validator for its arguments."""

    json_mode: bool
    content: jsonschema_rs.Validator | None
    tools: Mapping[str, jsonschema_rs.Validator | None]

    def check(self, choices: Sequence[Mapping[str, Any]]) -> list[str]:
        """The first few errors of an answer's choices (whole messages); empty: valid."""
        errors: list[str] = []
        many = len(choices) > 1
        for choice in choices:
            message = choice.get("message") or {}
            prefix = f"choice {choice.get('index', 0)}: " if many else ""
            errors.extend(prefix + error for error in self._message_errors(message))
            if len(errors) >= MAX_ERRORS:
                break
        return errors[:MAX_ERRORS]

    def _message_errors(self, message: Mapping[str, Any]) -> list[str]:
        calls = message.get("tool_calls") or []
        if calls:  # the calls are the answer: what they carry is checked, not the content
            return [e for n, call in enumerate(calls) for e in self.call_errors(n, call)]
        content = message.get("content")
        if not self.json_mode:
            return []
        if content is None and isinstance(message.get("refusal"), str):
            return []  # the model declined (OpenAI's structured-output refusal): an answer
        return _json_errors("content", content, self.content)

    def call_errors(self, n: int, call: Any) -> list[str]:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            return [f"tool call {n}: not a function call"]
        name = function.get("name")
        if not isinstance(name, str) or name not in self.tools:
            shown = repr(name) if isinstance(name, str) and _PLAIN_KEY.fullmatch(name) else "?"
            declared = ", ".join(sorted(self.tools)) or "none"
            return [f"tool call {n} names an undeclared tool {shown} (declared: {declared})"]
        where = f"tool call {n} ({name}) arguments"
        return _json_errors(where, function.get("arguments"), self.tools[name])


def _json_errors(where: str, text: Any, validator: jsonschema_rs.Validator | None) -> list[str]:
    if not isinstance(text, str) or not text.strip():
        return [f"{where}: empty, expected JSON"]
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        at = (
            f" (line {exc.lineno}, column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        return [f"{where}: not valid JSON: {reason}{at}"]
    if validator is None:
        if not isinstance(value, dict):
            return [f"{where}: expected a JSON object, got {_json_type(value)}"]
        return []
    errors: list[str] = []
    for error in validator.iter_errors(value):
        errors.append(f"{where} at {json_path(error.instance_path)}: {_described(error)}")
        if len(errors) >= MAX_ERRORS:
            break
    return errors


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_path(path: Sequence[str | int]) -> str:
    """``$.items[2].name`` for ``["items", 2, "name"]``."""
    out = ["$"]
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(part[:64], ensure_ascii=False)}]")
    return "".join(out)


def _described(error: jsonschema_rs.ValidationError) -> str:
    """The engine's message, the offending value (which it quotes first) replaced by "the
    value": the answer's text stays out of the trace and the error body."""
    message, instance = error.message, error.instance
    shown = json.dumps(instance, separators=(",", ":"), ensure_ascii=False)
    if message.startswith(shown):
        message = "the value" + message[len(shown) :]
    elif isinstance(instance, (str, list, dict)) and shown in message:
        message = f"the value fails {error.kind.name!r}"  # quoted elsewhere: not said at all
    return _short(message)


def _short(text: str) -> str:
    text = text.split("\n", 1)[0]
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


# -- building the checker (once per distinct request shape) -----------------------------------

_cache: OrderedDict[bytes, AnswerChecker | None] = OrderedDict()


def answer_checker(params: Mapping[str, Any]) -> AnswerChecker | None:
    """The checker for a request's ``response_format`` and ``tools``, or None when neither
    asks for structure. Raises :class:`InvalidRequest` for a schema that is not JSON Schema."""
    if not wants_check(params):
        return None
    response_format, tools = params.get("response_format"), params.get("tools")
    try:
        shape = orjson.dumps([response_format, tools], option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what JSON from the wire never holds: an in-process caller's oddity
        shape = json.dumps([response_format, tools], sort_keys=True, default=repr).encode()
    key = hashlib.blake2b(shape, digest_size=16).digest()
    try:
        checker = _cache[key]
    except KeyError:
        pass
    else:
        _cache.move_to_end(key)
        return checker
    checker = _build(response_format, tools)
    _cache[key] = checker
    if len(_cache) > _CACHE_SIZE:
        _cache.popitem(last=False)
    return checker


def _build(response_format: Any, tools: Any) -> AnswerChecker | None:
    json_mode, content = False, None
    if isinstance(response_format, dict) and response_format.get("type") in _JSON_TYPES:
        json_mode = True
        spec = response_format.get("json_schema")
        if response_format["type"] == "json_schema" and isinstance(spec, dict):
            schema = spec.get("schema")
            if schema is not None:
                content = compile_schema(
                    schema, "response_format.json_schema.schema", strict=spec.get("strict") is True
                )
    declared: dict[str, jsonschema_rs.Validator | None] = {}
    for n, tool in enumerate(tools if isinstance(tools, list) else []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue  # not a function tool: nothing of it to check
        parameters = function.get("parameters")
        declared[function["name"]] = (
            None
            if parameters is None
            else compile_schema(
                parameters,
                f"tools[{n}].function.parameters",
                strict=function.get("strict") is True,
            )
        )
    if not json_mode and not declared:
        return None
    return AnswerChecker(json_mode, content, declared)


def compile_schema(schema: Any, param: str, *, strict: bool = False) -> jsonschema_rs.Validator:
    """A validator for a client's schema; :class:`InvalidRequest` (naming ``param``) for one
    that is not JSON Schema or refers outside itself. ``strict``: as OpenAI's strict mode
    reads a schema, an object admits only the properties it lists, and all of them."""
    if not isinstance(schema, (dict, bool)):
        message = f"{param} must be a JSON Schema object."
        raise InvalidRequest(message, param=param, code="invalid_schema")
    if strict:
        schema = _strict(schema)
    try:
        jsonschema_rs.meta.validate(schema)
        return jsonschema_rs.validator_for(schema, offline=True, pattern_options=_PATTERNS)
    except jsonschema_rs.ValidationError as exc:
        where = json_path(exc.instance_path)
        raise InvalidRequest(
            f"{param} is not a valid JSON Schema (at {where}): {_short(exc.message)}",
            param=param,
            code="invalid_schema",
        ) from None
    except (jsonschema_rs.ReferencingError, ValueError) as exc:
        raise InvalidRequest(
            f"{param} cannot be used: {_short(str(exc))} (a $ref must point inside the schema)",
            param=param,
            code="invalid_schema",
        ) from None


def _strict(schema: Any) -> Any:
    """A copy of ``schema`` whose objects are closed (``additionalProperties: false``) and
    require every property they list, unless they say otherwise."""
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items()}
    for key in _ONE_SCHEMA:
        if key in out:
            out[key] = _strict(out[key])
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _strict(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_strict(sub) for sub in out[key]]
    kind = out.get("type")
    if (
        isinstance(out.get("properties"), dict)
        or kind == "object"
        or (isinstance(kind, list) and "object" in kind)
    ):
        out.setdefault("additionalProperties", False)
        if isinstance(out.get("properties"), dict):
            out.setdefault("required", list(out["properties"]))
    return out


# -- asking again ------------------------------------------------------------------------------


def reask_messages(
    checker: AnswerChecker, choices: Sequence[Mapping[str, Any]], errors: Sequence[str]
) -> list[dict[str, Any]]:
    """What follows the original messages when the model is asked again: its invalid answer
    (the first invalid choice), a tool result for each call it made (none was run), and what
    was wrong."""
    invalid = [c for c in choices if checker.check([c])] or list(choices[:1])
    message = (invalid[0].get("message") if invalid else None) or {}
    assistant: dict[str, Any] = {"role": "assistant", "content": message.get("content")}
    turn: list[dict[str, Any]] = [assistant]
    calls = message.get("tool_calls") or []
    if calls:
        assistant["tool_calls"] = []
        for n, call in enumerate(calls):
            call = call if isinstance(call, dict) else {}
            raw = call.get("function")
            function: dict[str, Any] = raw if isinstance(raw, dict) else {}
            call_id = call.get("id") if isinstance(call.get("id"), str) else f"call_{n}"
            assistant["tool_calls"].append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {
                        "name": function.get("name") or "",
                        "arguments": function.get("arguments") or "",
                    },
                }
            )
            own = checker.call_errors(n, call)
            reason = "; ".join(own) if own else "another call of this answer was invalid"
            turn.append({"role": "tool", "tool_call_id": call_id, "content": f"Not run: {reason}"})
    listed = "\n".join(f"- {error}" for error in errors)
    turn.append(
        {
            "role": "user",
            "content": (
                "Your previous answer does not match the required format:\n"
                f"{listed}\n"
                "Answer again in full, corrected, in the required format only."
            ),
        }
    )
    return turn
