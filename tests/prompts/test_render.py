"""Prompt files render safely: typed variables with defaults, few-shot examples after the
system messages, the output schema carried, and template logic refused when a file loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from groundgate.errors import ConfigError
from groundgate.prompts.files import load_prompt_files
from groundgate.prompts.format import PromptVersion
from groundgate.prompts.render import TemplateError

SUPPORT = """
description = "support answers"

[[versions]]
version = 1
instructions = "You answer for {{ product }}."
messages = [
  { role = "system", content = "{{ instructions }}" },
  { role = "user", content = "Q ({{ retries }} tries, urgent={{ urgent }}): {{ question }}" },
]
output_schema = { type = "object", properties = { answer = { type = "string" } } }

[versions.variables.product]
type = "string"
default = "Groundgate"
[versions.variables.question]
type = "string"
[versions.variables.retries]
type = "integer"
[versions.variables.urgent]
type = "boolean"
required = false

[[versions.examples]]
user = "How do I reset?"
assistant = "Open Settings [1]."
"""


def load(tmp_path: Path, name: str, text: str) -> dict[int, PromptVersion]:
    folder = tmp_path / "prompts"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.toml").write_text(text, "utf-8")
    return load_prompt_files([folder])[name]


def test_variables_are_typed_defaulted_and_examples_follow_the_system_message(
    tmp_path: Path,
) -> None:
    version = load(tmp_path, "support", SUPPORT)[1]
    messages = version.render_messages({"question": "Where?", "retries": 2})
    assert messages == [
        {"role": "system", "content": "You answer for Groundgate."},
        {"role": "user", "content": "How do I reset?"},
        {"role": "assistant", "content": "Open Settings [1]."},
        {"role": "user", "content": "Q (2 tries, urgent=): Where?"},
    ]
    assert version.spec.output_schema == {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
    }
    with pytest.raises(TemplateError) as info:
        version.render_messages({"question": 3, "retries": "two", "extra": 1})
    problem = str(info.value)
    assert "question: expected string" in problem and "retries: expected integer" in problem
    assert "unknown variables: extra" in problem
    with pytest.raises(TemplateError, match="question: required"):
        version.render_messages({"retries": 1})


def test_a_value_holding_a_placeholder_is_inserted_literally(tmp_path: Path) -> None:
    version = load(tmp_path, "support", SUPPORT)[1]
    messages = version.render_messages({"question": "{{ product }} {% if x %}", "retries": 1})
    assert messages[-1]["content"] == "Q (1 tries, urgent=): {{ product }} {% if x %}"


@pytest.mark.parametrize(
    "template",
    ["{{ x.__class__ }}", "{% for i in x %}{{ i }}{% endfor %}", "{{ x|e }}", "{{ f() }}"],
)
def test_template_logic_is_refused_when_the_file_loads(tmp_path: Path, template: str) -> None:
    text = f'[[versions]]\nversion = 1\ninstructions = "{template}"\n'
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "bad", text)
    assert "bad.toml" in str(info.value) and "only {{ name }} placeholders" in str(info.value)
