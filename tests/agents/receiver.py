"""A real local HTTP server (aiohttp, on its own thread) for the agent tests: the HTTP tools
the agent calls (one that works and records what it was sent, one that fails, one that
hangs) and the approval webhook's receiver."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Receiver:
    url: str = ""
    sent: list[dict[str, Any]] = field(default_factory=list)  # calls of the "send" tool
    hooks: list[dict[str, Any]] = field(default_factory=list)  # webhook notifications
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _thread: threading.Thread | None = None

    def wait_for_hooks(self, count: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and len(self.hooks) < count:
            time.sleep(0.02)
        return list(self.hooks)

    def start(self) -> Receiver:
        ready = threading.Event()

        async def send(request: web.Request) -> web.Response:
            self.sent.append(await request.json())
            return web.json_response({"sent": True})

        async def fail(request: web.Request) -> web.Response:
            return web.Response(status=500, text="the tool broke")

        async def hang(request: web.Request) -> web.Response:
            await asyncio.sleep(60)
            return web.json_response({"late": True})

        async def hook(request: web.Request) -> web.Response:
            body = await request.json()
            body["_secret"] = request.headers.get("x-hook-secret")
            self.hooks.append(body)
            return web.json_response({"ok": True})

        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/send", send)
            app.router.add_route("*", "/fail", fail)
            app.router.add_route("*", "/hang", hang)
            app.router.add_post("/hook", hook)
            self._runner = web.AppRunner(app, shutdown_timeout=0.1)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
            ready.set()

        def main() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        loop, runner = self._loop, self._runner
        if loop is None or runner is None:
            return

        async def shutdown() -> None:
            await runner.cleanup()
            # Handlers still hanging (the "hang" tool outlived its callers): end them.
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
