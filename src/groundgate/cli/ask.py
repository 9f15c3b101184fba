"""``groundgate ask``: one question answered in-process through the same pipeline the server
runs, no server needed."""

from __future__ import annotations

from rich.console import Console

from groundgate.config import Settings

err = Console(stderr=True)
out = Console()


async def ask_in_process(
    settings: Settings, question: str, model: str, context: str | None, stream: bool
) -> None:
    """Answer ``question`` through a Container built here; print the answer (streamed as it
    arrives with ``stream``) on stdout and where it came from on stderr."""
    from groundgate.container import Container
    from groundgate.providers.base import ChatCall

    messages = [{"role": "user", "content": question}]
    if context:
        messages.insert(0, {"role": "system", "content": context})
    runtime = Container(settings)
    await runtime.start()
    try:
        ctx = runtime.new_chat(model, ChatCall(messages=messages), stream=stream)
        if stream:
            flight = await runtime.open(ctx)
            error: BaseException | None = None
            try:
                async for chunk in flight.chunks():
                    for choice in chunk.choices:
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            out.print(piece, end="", highlight=False, soft_wrap=True)
            except BaseException as exc:
                error = exc
                raise
            finally:
                await flight.close(error)
            out.print()
        else:
            await runtime.complete(ctx)
            assert ctx.completion is not None
            message = ctx.completion.choices[0].get("message") or {}
            out.print(message.get("content") or "", highlight=False, soft_wrap=True)
        err.print(
            f"[dim]model {ctx.deployment} · source {ctx.source} · "
            f"cost ${ctx.cost_usd:.6f} · trace {ctx.trace_id}[/dim]",
            highlight=False,
            soft_wrap=True,
        )
    finally:
        await runtime.stop()
