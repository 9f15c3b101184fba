"""The fake upstream's aiohttp application, and ``FakeUpstream``: that app on a real socket in
a background thread with its own event loop, plus a thread-safe control surface.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from groundgate.testing.fake_anthropic import build_messages
from groundgate.testing.fake_openai import build_chat, build_embeddings, build_models
from groundgate.testing.fake_state import Behavior, RecordedRequest, Responder, UpstreamState
from groundgate.testing.fake_wire import Builder, Style, error_response, respond

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# In-flight requests get this long to finish when the server stops; a fake need not be patient.
_SHUTDOWN_TIMEOUT = 0.1
# Prompts in tests can be large; aiohttp's default body limit is 1 MiB.
_MAX_BODY = 64 * 1024 * 1024


def build_app(state: UpstreamState) -> web.Application:
    app = web.Application(client_max_size=_MAX_BODY)
    app.router.add_post("/v1/chat/completions", _api_route(state, "openai", build_chat))
    app.router.add_post("/v1/embeddings", _api_route(state, "openai", build_embeddings))
    app.router.add_get("/v1/models", _api_route(state, "openai", build_models))
    app.router.add_post("/v1/messages", _api_route(state, "anthropic", build_messages))
    _add_control_routes(app, state)
    return app


def _api_route(state: UpstreamState, style: Style, build: Builder) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body: Any = None
        if raw:
            with contextlib.suppress(orjson.JSONDecodeError):
                body = orjson.loads(raw)
        try:
            exchange = state.begin(request.path, request.method, request.headers, body)
        except ValueError as exc:  # a bad x-fake-behavior header
            return error_response(style, 400, str(exc))
        try:
            response = await respond(request, exchange, style, build, body)
        except (asyncio.CancelledError, ConnectionError):
            # aiohttp cancels the handler when the client disconnects (handler_cancellation);
            # a write to a closed connection raises instead. No-op if already completed.
            exchange.cancel()
            raise
        except Exception:
            exchange.complete()  # a bug here: aiohttp answers 500
            raise
        exchange.complete()
        return response

    return handler


def _add_control_routes(app: web.Application, state: UpstreamState) -> None:
    """The control surface over HTTP, for a fake upstream running in another process."""

    async def set_default(request: web.Request) -> web.Response:
        state.set_default(Behavior.from_dict(await _json(request)))
        return _ok()

    async def set_script(request: web.Request) -> web.Response:
        data = await _json(request)
        if not isinstance(data, list):
            raise ValueError("script must be a JSON array of behaviors")
        state.set_script([Behavior.from_dict(item) for item in data])
        return _ok()

    async def get_requests(request: web.Request) -> web.Response:
        return web.json_response([r.to_dict() for r in state.requests()], dumps=_dumps_str)

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(state.stats(), dumps=_dumps_str)

    async def reset(request: web.Request) -> web.Response:
        state.reset()
        return _ok()

    def guarded(fn: Handler) -> Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                return await fn(request)
            except ValueError as exc:  # includes orjson.JSONDecodeError
                return web.json_response({"error": str(exc)}, status=400, dumps=_dumps_str)

        return wrapper

    app.router.add_post("/__control/default", guarded(set_default))
    app.router.add_post("/__control/script", guarded(set_script))
    app.router.add_get("/__control/requests", get_requests)
    app.router.add_get("/__control/stats", get_stats)
    app.router.add_post("/__control/reset", reset)


async def _json(request: web.Request) -> Any:
    return orjson.loads(await request.read())


def _dumps_str(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def _ok() -> web.Response:
    return web.json_response({"ok": True}, dumps=_dumps_str)


def listen_socket(host: str, port: int) -> socket.socket:
    """Bind now, so the port is known (and a clash reported) before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def url_for(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def start_runner(state: UpstreamState, sock: socket.socket) -> web.AppRunner:
    runner = web.AppRunner(
        build_app(state),
        access_log=None,
        # Cancel a handler when its client disconnects: that is how hangs and latency waits
        # notice a client timeout and count the request as cancelled.
        handler_cancellation=True,
        shutdown_timeout=_SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    # A large backlog: a benchmark opens hundreds of connections at once.
    await web.SockSite(runner, sock, backlog=2048).start()
    return runner


class FakeUpstream:
    """A fake OpenAI/Anthropic upstream on a real socket, served from a background thread.

    Every public method is safe to call from any thread while the server runs.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        default: Behavior | None = None,
        *,
        record: bool = True,
        max_recorded: int = 10_000,
    ) -> None:
        self._host = host
        self._port = port
        self._state = UpstreamState(default or Behavior(), record=record, max_recorded=max_recorded)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self.url = ""
        self.openai_base_url = ""

    def start(self) -> FakeUpstream:
        if self._thread is not None:
            raise RuntimeError("FakeUpstream already started")
        sock = listen_socket(self._host, self._port)
        self.url = url_for(sock)
        self.openai_base_url = self.url + "/v1"
        ready = threading.Event()
        failure: list[BaseException] = []
        thread = threading.Thread(
            target=self._serve,
            args=(sock, ready, failure),
            name=f"fake-upstream {self.url}",
            daemon=True,
        )
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            raise failure[0]
        self._thread = thread
        return self

    def _serve(
        self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        # asyncio.run also cancels whatever handlers are left and closes the loop cleanly.
        asyncio.run(self._main(sock, ready, failure))

    async def _main(
        self, sock: socket.socket, ready: threading.Event, failure: list[BaseException]
    ) -> None:
        try:
            runner = await start_runner(self._state, sock)
        except BaseException as exc:
            failure.append(exc)
            sock.close()
            ready.set()
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        """Stop serving; in-flight requests are cut off. Safe to call twice."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = self._loop = self._stopping = None

    def __enter__(self) -> FakeUpstream:
        return self if self._thread is not None else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def set_default(self, behavior: Behavior) -> None:
        self._state.set_default(behavior)

    def respond_with(self, responder: Responder | None) -> None:
        """Pick each request's behaviour from its path and JSON body (in process only; a
        scripted behaviour or an ``x-fake-behavior`` header still comes first)."""
        self._state.set_responder(responder)

    def script(self, *behaviors: Behavior) -> None:
        """Replace the queue: each next request (any API route) consumes one, in order."""
        self._state.set_script(list(behaviors))

    def requests(self) -> list[RecordedRequest]:
        return self._state.requests()

    def stats(self) -> dict[str, int]:
        return self._state.stats()

    def reset(self) -> None:
        """Clear script, recordings and counters; the default goes back to the constructor's."""
        self._state.reset()

    def wait_for(
        self, predicate: Callable[[dict[str, int]], bool], timeout: float = 5.0
    ) -> dict[str, int]:
        """Poll ``stats()`` until ``predicate`` holds; raise ``TimeoutError`` otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(f"fake upstream stats never matched; last: {stats}")
            time.sleep(0.005)

    async def wait_for_async(
        self, predicate: Callable[[dict[str, int]], bool], timeout: float = 5.0
    ) -> dict[str, int]:
        """``wait_for`` for async tests: polls without blocking the caller's event loop."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if predicate(stats):
                return stats
            if time.monotonic() >= deadline:
                raise TimeoutError(f"fake upstream stats never matched; last: {stats}")
            await asyncio.sleep(0.005)
