"""A prompt version as a person writes it: one TOML file per prompt name, its versions inside.

::

    # prompts/support-answer.toml
    description = "Answers support questions from the knowledge base"

    [[versions]]
    version = 1
    instructions = "Answer using only the sources. Cite them like [1]."
    # Optional; how one retrieved source is shown to the model (grounded apps).
    source_format = "[{n}] {title}\\n{text}"
    # Optional message layout; {{ name }} placeholders only (prompts/render.py).
    messages = [
      { role = "system", content = "{{ instructions }}" },
      { role = "user", content = "Question: {{ question }}" },
    ]
    output_schema = { type = "object", properties = { answer = { type = "string" } } }
    metadata = { owner = "support-team" }

    [versions.variables.question]
    type = "string"          # string | integer | number | boolean | list | json
    required = true
    description = "the user's question"

    [[versions.examples]]    # few-shot, put after the system messages, in order
    user = "How do I reset my password?"
    assistant = "Open Settings > Security and choose Reset [1]."

``instructions`` is also the variable ``{{ instructions }}`` of the layout. Without a layout the
version renders as one system message with the instructions, then the examples, then the user
message ``{{ input }}`` when an ``input`` value is given.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from groundgate.prompts.render import TemplateError, placeholders, render

VariableType = Literal["string", "integer", "number", "boolean", "list", "json"]
DEFAULT_SOURCE_FORMAT = "[{n}] {title}\n{text}"
_SOURCE_FIELDS = frozenset({"n", "title", "headings", "text"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Variable(_Strict):
    type: VariableType = "string"
    required: bool = True
    default: Any = None
    description: str = ""


class MessageTemplate(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str


class Example(_Strict):
    user: str
    assistant: str


class VersionSpec(_Strict):
    version: int = Field(ge=1)
    instructions: str = ""
    source_format: str = DEFAULT_SOURCE_FORMAT
    messages: list[MessageTemplate] = Field(default_factory=list)
    variables: dict[str, Variable] = Field(default_factory=dict)
    examples: list[Example] = Field(default_factory=list)
    output_schema: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("source_format")
    @classmethod
    def _source_fields(cls, value: str) -> str:
        import string

        for _, name, spec, conversion in string.Formatter().parse(value):
            if name is None:
                continue
            if name not in _SOURCE_FIELDS or spec or conversion:
                raise ValueError(
                    f"source_format may use only {{n}}, {{title}}, {{headings}} and {{text}}, "
                    f"got {{{name}}}"
                )
        return value

    @model_validator(mode="after")
    def _templates(self) -> VersionSpec:
        used: set[str] = set()
        try:
            for message in self.messages:
                used.update(placeholders(message.content))
            placeholders(self.instructions)
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        undeclared = used - set(self.variables) - {"instructions"}
        if undeclared:
            raise ValueError(
                f"the layout uses undeclared variables: {', '.join(sorted(undeclared))} "
                "(declare each under [versions.variables])"
            )
        return self


class PromptFile(_Strict):
    description: str = ""
    versions: list[VersionSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> PromptFile:
        numbers = [v.version for v in self.versions]
        if len(numbers) != len(set(numbers)):
            raise ValueError("a version number is used twice")
        return self


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One immutable version of a prompt, addressed as ``name@version``."""

    name: str
    description: str
    spec: VersionSpec
    origin: str  # the file it came from ("builtin:..." for the packaged ones)

    @property
    def version(self) -> int:
        return self.spec.version

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.spec.version}"

    @property
    def instructions(self) -> str:
        return self.spec.instructions

    @property
    def source_format(self) -> str:
        return self.spec.source_format

    @property
    def digest(self) -> str:
        """sha256 of the version's content (canonical JSON): a used version must keep it."""
        canonical = orjson.dumps(self.spec.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    def static_text(self) -> str:
        """The text the version always sends: instructions, layout and examples (its token
        count is the version's fixed cost per request)."""
        parts = [self.spec.instructions]
        parts += [m.content for m in self.spec.messages]
        for example in self.spec.examples:
            parts += [example.user, example.assistant]
        return "\n".join(p for p in parts if p)

    def render_messages(self, values: Mapping[str, Any] | None = None) -> list[dict[str, str]]:
        """The chat messages for ``values``, checked against the declared variables (types,
        required, defaults). Raises :class:`TemplateError` with every problem at once."""
        text_values = self._check(dict(values or {}))
        text_values["instructions"] = render(self.spec.instructions, text_values)
        examples: list[dict[str, str]] = []
        for example in self.spec.examples:
            examples += [
                {"role": "user", "content": example.user},
                {"role": "assistant", "content": example.assistant},
            ]
        if not self.spec.messages:
            out = [{"role": "system", "content": text_values["instructions"]}, *examples]
            if "input" in text_values:
                out.append({"role": "user", "content": text_values["input"]})
            return out
        rendered = [
            {"role": m.role, "content": render(m.content, text_values)} for m in self.spec.messages
        ]
        # Few-shot examples go after the leading system/developer messages.
        head = 0
        while head < len(rendered) and rendered[head]["role"] in ("system", "developer"):
            head += 1
        return [*rendered[:head], *examples, *rendered[head:]]

    def _check(self, values: dict[str, Any]) -> dict[str, str]:
        problems: list[str] = []
        out: dict[str, str] = {}
        for name, var in self.spec.variables.items():
            if name not in values or values[name] is None:
                if var.default is not None:
                    values[name] = var.default
                elif var.required:
                    problems.append(f"{name}: required")
                    continue
                else:
                    out[name] = ""
                    continue
            text = _as_text(values[name], var.type)
            if text is None:
                problems.append(f"{name}: expected {var.type}, got {type(values[name]).__name__}")
            else:
                out[name] = text
        unknown = set(values) - set(self.spec.variables) - {"input"}
        if unknown:
            problems.append(f"unknown variables: {', '.join(sorted(unknown))}")
        if "input" in values and "input" not in self.spec.variables:
            out["input"] = str(values["input"])
        if problems:
            raise TemplateError(f"{self.ref}: " + "; ".join(problems))
        return out


def _as_text(value: Any, kind: VariableType) -> str | None:
    """The value as the text put in the prompt, or None when it is not of type ``kind``."""
    if kind == "string":
        return value if isinstance(value, str) else None
    if kind == "boolean":
        return ("true" if value else "false") if isinstance(value, bool) else None
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return str(value) if ok else None
    if kind == "number":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return str(value) if ok and math.isfinite(value) else None
    if kind == "list":
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return "\n".join(f"- {v}" for v in value)
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return None
