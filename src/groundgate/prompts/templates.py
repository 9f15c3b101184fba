"""Prompt templates, addressed as ``name@version``. A version, once shipped, never changes:
answers, caches and evaluation reports name the version that produced them."""

from __future__ import annotations

from dataclasses import dataclass

from groundgate.errors import ConfigError


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    name: str
    version: int
    instructions: str
    # How one numbered source is shown; {n}, {title}, {headings} and {text} are filled in.
    source_format: str = "[{n}] {title}\n{text}"

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


_BUILT_IN = {
    t.ref: t
    for t in (
        PromptTemplate(
            name="grounded-answer",
            version=1,
            instructions=(
                "Answer the user's question using only the numbered sources below. "
                "Cite the source of every statement with its number in brackets, like [1]. "
                "If the sources do not contain the answer, say that you could not find it in "
                "the provided documents, and do not guess."
            ),
        ),
    )
}


def get_template(ref: str) -> PromptTemplate:
    name, _, version = ref.partition("@")
    if not version:
        versions = sorted(
            (t for t in _BUILT_IN.values() if t.name == name), key=lambda t: t.version
        )
        if versions:
            return versions[-1]
    template = _BUILT_IN.get(ref)
    if template is None:
        known = ", ".join(sorted(_BUILT_IN))
        raise ConfigError([f"unknown prompt {ref!r} (available: {known})"], source="prompts")
    return template


def known_templates() -> list[str]:
    return sorted(_BUILT_IN)
