"""The app's prompt: which version answers (``PromptVersion``, first in an app's pipeline) and
the grounded messages built from it (``Prompt``), with the retrieved passages as numbered
sources."""

from __future__ import annotations

from typing import Any

from groundgate.errors import PromptUnavailable
from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Stage
from groundgate.prompts.assemble import build_context
from groundgate.prompts.format import PromptVersion as Version
from groundgate.prompts.registry import PromptRegistry
from groundgate.prompts.render import TemplateError
from groundgate.providers.base import ChatCall
from groundgate.retrieval.rewrite import message_text

_SOURCES = "\n\nSources:"


class PromptVersion(Stage):
    """Resolves the app's ``prompt`` (``name@label`` or ``name``) to the version that answers
    this request, ``name@N``, before anything keys or records by it: the cache key, the trace
    and the response's ``groundgate.prompt`` all name the version, never the label. Not a
    nameable stage: every app pipeline runs it first."""

    name = "prompt_version"  # no span of its own: the trace's ``attrs.prompt`` says what it did

    def __init__(self, registry: PromptRegistry) -> None:
        self.registry = registry

    async def enter(self, ctx: RequestContext) -> None:
        app = ctx.app
        if app is None:
            return
        version = await self.registry.resolve(app.prompt)
        ctx.trace.attrs["prompt"] = {"requested": app.prompt, "version": version.ref}
        if version.ref != app.prompt:
            ctx.app = app.model_copy(update={"prompt": version.ref})


class Prompt(Stage):
    name = "prompt"
    span = "prompt"

    def __init__(self, registry: PromptRegistry) -> None:
        self.registry = registry

    async def enter(self, ctx: RequestContext) -> None:
        app = ctx.app
        if app is None:
            return
        version = await self.registry.resolve(app.prompt)  # name@N by now: no store read
        system, sources = build_context(
            version, [p.chunk for p in ctx.passages], app.context_tokens
        )
        client_system = [
            message_text(m) for m in ctx.call.messages if m.get("role") in ("system", "developer")
        ]
        if any(client_system):
            # The client's own instructions stay, but before the sources: quoted sources
            # must be the only material an answer rests on.
            head, sep, tail = system.partition(_SOURCES)
            system = head + "\n\nAdditional instructions: " + " ".join(client_system) + sep + tail
        conversation: list[dict[str, Any]] = [
            m for m in ctx.call.messages if m.get("role") not in ("system", "developer")
        ]
        ctx.call = ChatCall(
            messages=[*_head(version, system, ctx.query), *conversation], params=ctx.call.params
        )
        ctx.sources = sources
        ctx.trace.attrs["prompt"] = {
            **ctx.trace.attrs.get("prompt", {}),
            "template": version.ref,
            "sources": len(sources),
        }


def _head(version: Version, system: str, question: str) -> list[dict[str, Any]]:
    """The messages before the client's conversation: the version's system message(s), its
    variables filled, then its few-shot examples. ``system`` is the instructions, any client
    instructions, then the numbered sources (``build_context``).

    Without a layout that is one system message (for ``grounded-answer@1`` exactly the text
    of before the registry). A layout may hold only system and developer messages here (the
    conversation is the client's); it may place the sources with ``{{ sources }}`` and the
    question with ``{{ question }}`` (declared as variables). The sources, unless placed,
    close the last system message, after any client instructions."""
    if any(m.role not in ("system", "developer") for m in version.spec.messages):
        raise PromptUnavailable(
            f"Prompt {version.ref} cannot serve an app: an app's prompt layout holds only "
            "system and developer messages (the conversation comes from the client)."
        )
    instructions, _, sources = system.partition(_SOURCES)
    sources = _SOURCES.lstrip("\n") + sources
    # What the client's own system messages added after the version's instructions.
    extra = instructions[len(version.instructions) :]
    offered = {"sources": sources, "question": question}
    declared = version.spec.variables
    try:
        messages = version.render_messages({k: v for k, v in offered.items() if k in declared})
    except TemplateError as exc:
        raise PromptUnavailable(f"Prompt {version.ref} cannot serve an app: {exc}") from None
    tail = extra if "sources" in declared else extra + "\n\n" + sources
    last = max(i for i, m in enumerate(messages) if m["role"] in ("system", "developer"))
    messages[last] = {**messages[last], "content": messages[last]["content"] + tail}
    return messages
