"""The texts of a chat request's messages, readable and rewritable in place: a message's
``content`` is a string or a list of parts, of which the ``text`` parts hold text."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TextSlot:
    """One piece of text in a message: the whole ``content`` (``part`` None) or one part."""

    message: dict[str, Any]
    part: dict[str, Any] | None
    role: str

    @property
    def text(self) -> str:
        holder = self.part if self.part is not None else self.message
        value = holder.get("text" if self.part is not None else "content")
        return value if isinstance(value, str) else ""

    def replace(self, text: str) -> None:
        if self.part is not None:
            self.part["text"] = text
        else:
            self.message["content"] = text


def text_slots(messages: list[dict[str, Any]]) -> Iterator[TextSlot]:
    for message in messages:
        role = str(message.get("role", ""))
        content = message.get("content")
        if isinstance(content, str):
            yield TextSlot(message, None, role)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield TextSlot(message, part, role)


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The newest user message's text (its parts joined), "" if there is none."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return "\n".join(slot.text for slot in text_slots([message]) if slot.text)
    return ""
