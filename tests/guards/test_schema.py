"""The schema guard's checks: json_object and json_schema content (strict closing objects),
tool-call arguments against their tool's parameters (and undeclared tools), short errors that
leave the answer's values out, a client schema that is not JSON Schema refused naming its
parameter, and the turn that asks the model again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from groundgate.errors import InvalidRequest
from groundgate.guards.schema import MAX_ERRORS, AnswerChecker, answer_checker, reask_messages

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
}
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
NO_PARAMETERS = {"type": "function", "function": {"name": "ping"}}


def json_schema(schema: Any, *, strict: bool | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "person", "schema": schema}
    if strict is not None:
        spec["strict"] = strict
    return {"response_format": {"type": "json_schema", "json_schema": spec}}


def checker(params: dict[str, Any]) -> AnswerChecker:
    built = answer_checker(params)
    assert built is not None
    return built


def said(content: str | None, **message: Any) -> list[dict[str, Any]]:
    return [{"index": 0, "message": {"role": "assistant", "content": content, **message}}]


def called(*calls: tuple[str, str]) -> list[dict[str, Any]]:
    tool_calls = [
        {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": args}}
        for n, (name, args) in enumerate(calls)
    ]
    return said(None, tool_calls=tool_calls)


def test_nothing_to_check_without_a_format_or_tools() -> None:
    assert answer_checker({}) is None
    assert answer_checker({"response_format": {"type": "text"}, "tools": []}) is None


def test_json_object_must_be_an_object() -> None:
    check = checker({"response_format": {"type": "json_object"}}).check
    assert check(said('{"a": [1, 2]}')) == []
    assert check(said("Sure! Here it is: {")) == [
        "content: not valid JSON: Expecting value (line 1, column 1)"
    ]
    assert check(said("[1, 2]")) == ["content: expected a JSON object, got an array"]
    assert check(said('{"a": NaN}'))[0].startswith("content: not valid JSON")
    assert check(said("")) == ["content: empty, expected JSON"]
    # A refusal is an answer; a tool call is the answer, its content is not checked.
    assert check(said(None, refusal="I can't help with that.")) == []


def test_json_schema_errors_give_a_path_and_leave_the_value_out() -> None:
    check = checker(json_schema(PERSON)).check
    assert check(said('{"name": "Ada", "age": 36}')) == []
    errors = check(said('{"name": "Ada Lovelace", "age": "thirty-six"}'))
    assert errors == ['content at $.age: the value is not of type "integer"']
    assert check(said('{"age": -1}')) == [
        'content at $: "name" is a required property',
        "content at $.age: the value is less than the minimum of 0",
    ]


def test_strict_closes_objects_and_requires_every_property() -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}}
    extra = said('{"a": "x", "zzz": 1}')
    assert checker(json_schema(loose)).check(extra) == []
    errors = checker(json_schema(loose, strict=True)).check(extra)
    assert len(errors) == 2
    assert any("Additional properties are not allowed" in e for e in errors)
    assert any('"b" is a required property' in e for e in errors)
    # Nested objects are closed too; what a schema says itself is kept.
    nested = {
        "type": "object",
        "properties": {"inner": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        "additionalProperties": True,
        "required": [],
    }
    strict = checker(json_schema(nested, strict=True)).check
    assert strict(said('{"other": 1}')) == []
    assert strict(said('{"inner": {"x": 1, "y": 2}}'))[0].startswith("content at $.inner:")


def test_tool_arguments_match_their_tool_and_name_a_declared_one() -> None:
    check = checker({"tools": [WEATHER, NO_PARAMETERS]}).check
    assert check(called(("get_weather", '{"city": "Oslo"}'), ("ping", "{}"))) == []
    assert check(said("free text is fine when only tools are declared")) == []
    assert check(called(("get_weather", '{"city": 3}'))) == [
        'tool call 0 (get_weather) arguments at $.city: the value is not of type "string"'
    ]
    assert check(called(("ping", "{}"), ("get_weather", "{city: Oslo}"))) == [
        "tool call 1 (get_weather) arguments: not valid JSON: Expecting property name enclosed "
        "in double quotes (line 1, column 2)"
    ]
    assert check(called(("ping", "[]"))) == [
        "tool call 0 (ping) arguments: expected a JSON object, got an array"
    ]
    assert check(called(("delete_everything", "{}"))) == [
        "tool call 0 names an undeclared tool 'delete_everything' (declared: get_weather, ping)"
    ]


def test_several_choices_are_named_and_errors_capped() -> None:
    check = checker({"response_format": {"type": "json_object"}}).check
    choices = [{"index": i, "message": {"content": "{}" if i == 0 else "no"}} for i in range(9)]
    errors = check(choices)
    assert len(errors) == MAX_ERRORS
    assert errors[0] == "choice 1: content: not valid JSON: Expecting value (line 1, column 1)"


FORMAT = "response_format.json_schema.schema"
BAD_TOOL = {"type": "function", "function": {"name": "w", "parameters": {"type": 5}}}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        (json_schema({"type": "strnig"}), FORMAT),
        (json_schema({"properties": {"a": {"minimum": "zero"}}}), FORMAT),
        (json_schema({"$ref": "#/$defs/missing"}), FORMAT),
        # A reference outside the schema is never fetched (the gateway calls no client URL).
        (json_schema({"$ref": "http://127.0.0.1:9/schema.json"}), FORMAT),
        (json_schema(["not", "a", "schema"]), FORMAT),
        ({"tools": [NO_PARAMETERS, BAD_TOOL]}, "tools[1].function.parameters"),
    ],
)
def test_a_client_schema_that_is_not_json_schema_is_a_400(
    params: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as caught:
        answer_checker(params)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.code == "invalid_schema"
    assert param in caught.value.message


def test_the_same_schema_is_compiled_once() -> None:
    params = json_schema({**PERSON, "title": "cached"})
    assert answer_checker(params) is answer_checker(json.loads(json.dumps(params)))


def test_reask_turn_carries_the_answer_and_what_was_wrong() -> None:
    check = checker({"tools": [WEATHER, NO_PARAMETERS]})
    choices = called(("ping", "{}"), ("get_weather", '{"town": "Oslo"}'))
    errors = check.check(choices)
    turn = reask_messages(check, choices, errors)
    assert [m["role"] for m in turn] == ["assistant", "tool", "tool", "user"]
    assert turn[0]["tool_calls"][1]["function"] == {
        "name": "get_weather",
        "arguments": '{"town": "Oslo"}',
    }
    assert turn[1] == {
        "role": "tool",
        "tool_call_id": "call_0",
        "content": "Not run: another call of this answer was invalid",
    }
    assert turn[2]["tool_call_id"] == "call_1"
    assert '"city" is a required property' in turn[2]["content"]
    assert '"city" is a required property' in turn[3]["content"]
    plain = reask_messages(checker(json_schema(PERSON)), said("nope"), ["content: x"])
    assert plain[0] == {"role": "assistant", "content": "nope"}
    assert [m["role"] for m in plain] == ["assistant", "user"]
