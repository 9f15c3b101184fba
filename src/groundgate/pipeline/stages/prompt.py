"""Prompt: the grounded system message, with the retrieved passages as numbered sources."""

from __future__ import annotations

from typing import Any

from groundgate.pipeline.context import RequestContext
from groundgate.pipeline.stage import Stage
from groundgate.prompts.assemble import build_context
from groundgate.prompts.templates import get_template
from groundgate.providers.base import ChatCall
from groundgate.retrieval.rewrite import message_text


class Prompt(Stage):
    name = "prompt"
    span = "prompt"

    async def enter(self, ctx: RequestContext) -> None:
        app = ctx.app
        if app is None:
            return
        template = get_template(app.prompt)
        system, sources = build_context(
            template, [p.chunk for p in ctx.passages], app.context_tokens
        )
        client_system = [
            message_text(m) for m in ctx.call.messages if m.get("role") in ("system", "developer")
        ]
        if any(client_system):
            # The client's own instructions stay, but before the sources: quoted sources
            # must be the only material an answer rests on.
            head, sep, tail = system.partition("\n\nSources:")
            system = head + "\n\nAdditional instructions: " + " ".join(client_system) + sep + tail
        conversation: list[dict[str, Any]] = [
            m for m in ctx.call.messages if m.get("role") not in ("system", "developer")
        ]
        ctx.call = ChatCall(
            messages=[{"role": "system", "content": system}, *conversation], params=ctx.call.params
        )
        ctx.sources = sources
        ctx.trace.attrs["prompt"] = {"template": template.ref, "sources": len(sources)}
