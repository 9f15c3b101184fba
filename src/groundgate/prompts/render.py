"""Safe prompt rendering: ``{{ name }}`` placeholders filled with values, and nothing else.

There is no expression language: no attribute or item access, no filters, no loops, no calls.
A template engine that evaluates expressions is a code-execution hole when prompt files or
variables come from users (LiteLLM's Jinja SSTI CVE was exactly this), so anything that looks
like template logic (``{% ... %}``, ``{{ a.b }}``, ``{{ a | f }}``, ``{{ f() }}``) is refused
when the prompt is loaded, not guessed at. Values are inserted literally and never rendered
again, so a value holding ``{{ x }}`` stays that text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
# Anything template-like that is not a plain placeholder.
_BRACES = re.compile(r"\{\{(.*?)\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


class TemplateError(ValueError):
    """A template that is not a plain ``{{ name }}`` template, or values that do not fit it."""


def placeholders(template: str) -> list[str]:
    """The names a template uses, in order of first use. Raises :class:`TemplateError` for
    template logic (see the module docstring)."""
    for match in _BRACES.finditer(template):
        if not PLACEHOLDER.fullmatch(match.group(0)):
            shown = match.group(0) if len(match.group(0)) <= 60 else match.group(0)[:57] + "..."
            raise TemplateError(
                f"unsupported template expression {shown!r}: only {{{{ name }}}} placeholders "
                "are allowed (no attribute access, filters, calls or blocks)"
            )
    return list(dict.fromkeys(PLACEHOLDER.findall(template)))


def render(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each placeholder replaced by its value, in one pass."""
    placeholders(template)
    missing = [name for name in PLACEHOLDER.findall(template) if name not in values]
    if missing:
        raise TemplateError(f"no value for {', '.join(sorted(set(missing)))}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
