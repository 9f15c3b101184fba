"""A real local HTTP server (aiohttp, on its own thread) that records every request it gets,
raw path included, and answers from a small table of routes: the HTTP tools of the agent
tool tests, the approval webhook's receiver, and a server nothing should ever reach (its
record must stay empty)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

# (method, raw path) -> (status, body as text; for a 3xx, the Location); None: 404.
Route = Callable[[str, str], tuple[int, str] | None]


@dataclass(frozen=True)
class Seen:
    method: str
    raw_path: str  # as sent on the wire (percent-encoding kept)
    body: str


@dataclass
class Recorder:
    route: Route = lambda method, path: (200, "ok")
    url: str = ""
    port: int = 0
    seen: list[Seen] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None

    def hits(self, prefix: str) -> list[Seen]:
        return [s for s in self.seen if s.raw_path.startswith(prefix)]

    def start(self) -> Recorder:
        ready = threading.Event()

        async def handle(request: web.Request) -> web.Response:
            self.seen.append(Seen(request.method, request.raw_path, await request.text()))
            answer = self.route(request.method, request.raw_path)
            status, text = answer if answer is not None else (404, "not found")
            if 300 <= status < 400:
                return web.Response(status=status, headers={"Location": text})
            return web.Response(status=status, text=text, content_type="text/plain")

        async def serve() -> None:
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", handle)
            self._runner = web.AppRunner(app, shutdown_timeout=0.1)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.port = int(self._runner.addresses[0][1])
            self.url = f"http://127.0.0.1:{self.port}"
            ready.set()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        threading.Thread(target=main, daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("the recorder did not start")
        return self

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
