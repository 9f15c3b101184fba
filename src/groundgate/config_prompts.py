"""The ``[prompts]`` section, and how a prompt is named (kept beside ``config.py``, which
imports it)::

    [prompts]
    dir = "prompts"          # NAME.toml files (prompts/format.py), besides the built-in ones
    label_refresh_s = 1.0    # how long a label lookup is cached in this process

A relative ``dir`` written in the config file is resolved against the file's folder (so the
gateway finds it whatever its working directory); one set by ``GROUNDGATE_PROMPTS__DIR``,
against the working directory.

A prompt reference is ``name@N`` (a version), ``name@label`` (the version a label points at,
read from the store) or ``name`` (the latest version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class PromptsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: str | None = None
    # Seconds a label's version is reused before the store is read again: a move made by
    # another process (the CLI, another replica) takes effect within this; one made through
    # this process at once. 0: read the store on every request.
    label_refresh_s: float = Field(1.0, ge=0, le=3600)


@dataclass(frozen=True, slots=True)
class PromptRef:
    name: str
    version: int | None = None  # name@N
    label: str | None = None  # name@label; neither: the latest version

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}@{self.version}"
        return f"{self.name}@{self.label}" if self.label is not None else self.name


def parse_ref(ref: str) -> PromptRef:
    """``ref`` parsed; ValueError saying what is wrong with it."""
    name, sep, tail = ref.partition("@")
    if not _NAME.match(name):
        raise ValueError(f"{ref!r}: a prompt name is lower-case letters, digits, '_', '.' and '-'")
    if not sep:
        return PromptRef(name)
    if tail.isascii() and tail.isdigit() and int(tail) >= 1:
        return PromptRef(name, version=int(tail))
    if LABEL.match(tail):
        return PromptRef(name, label=tail)
    raise ValueError(
        f"{ref!r}: after '@' comes a version (1, 2, ...) or a label "
        "(lower-case letters, digits, '_' and '-', starting with a letter)"
    )
