"""A fake OpenAI-compatible and Anthropic upstream over real HTTP, for tests and benchmarks.

In process::

    with FakeUpstream(default=Behavior(latency_ms=5)) as upstream:
        upstream.script(Behavior(status=429, retry_after=0.1))  # the next request gets a 429
        ...  # point a client at upstream.openai_base_url

Out of process (a benchmark starts it and waits for the "listening on" line)::

    python -m groundgate.testing.fake_upstream --port 9100 --latency-ms 50 --no-record

and steers it over HTTP: ``POST /__control/default`` (a Behavior as JSON),
``POST /__control/script`` (a list of them), ``GET /__control/requests``,
``GET /__control/stats``, ``POST /__control/reset``. A single request can carry its own
behaviour in the ``x-fake-behavior`` header (JSON, applied over the default).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable

from groundgate.testing.fake_server import FakeUpstream, listen_socket, start_runner, url_for
from groundgate.testing.fake_state import BEHAVIOR_HEADER, Behavior, RecordedRequest, UpstreamState

__all__ = ["BEHAVIOR_HEADER", "Behavior", "FakeUpstream", "RecordedRequest", "main"]


async def _serve_forever(state: UpstreamState, host: str, port: int) -> None:
    sock = listen_socket(host, port)
    runner = await start_runner(state, sock)
    print(f"listening on {url_for(sock)}", flush=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m groundgate.testing.fake_upstream",
        description="Serve a fake OpenAI-compatible + Anthropic upstream in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="default latency")
    parser.add_argument("--stream-delay-ms", type=float, default=0.0, help="between chunks")
    parser.add_argument("--no-record", action="store_true", help="keep no request log")
    args = parser.parse_args(argv)

    default = Behavior(latency_ms=args.latency_ms, stream_delay_ms=args.stream_delay_ms)
    state = UpstreamState(default, record=not args.no_record)
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(_serve_forever(state, args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
