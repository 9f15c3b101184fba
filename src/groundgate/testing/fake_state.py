"""What the fake upstream should do, and what it has seen: behaviours, recordings, counters.

Everything here is shared between the server's event-loop thread and the test thread, so
``UpstreamState`` guards its data with one lock. ``Behavior`` is frozen, which makes handing
the same instance to many concurrent requests safe.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import orjson

# The header a single request uses to override the behaviour for itself only.
BEHAVIOR_HEADER = "x-fake-behavior"


@dataclass(frozen=True)
class Behavior:
    """How the fake upstream answers one request. Defaults give a fast, correct reply."""

    latency_ms: float = 0
    status: int = 200
    error_message: str = "fake upstream error"
    retry_after: float | None = None
    hang: bool = False
    malformed: bool = False
    truncated: bool = False
    reset: bool = False
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    stream_chunks: int = 4
    stream_delay_ms: float = 0
    stream_fail_after: int | None = None
    # False: an upstream that ignores stream_options.include_usage (no usage chunk at all), and
    # whose whole answers carry no "usage" either.
    report_usage: bool = True
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @classmethod
    def from_dict(cls, data: object, base: Behavior | None = None) -> Behavior:
        """Build from JSON-ish data; fields not given come from ``base`` (or the defaults).

        Raises ``ValueError`` on unknown fields or wrong types, so a typo in a test fails
        loudly instead of silently running with the default behaviour.
        """
        if not isinstance(data, dict):
            raise ValueError("behavior must be a JSON object")
        changes: dict[str, Any] = {}
        for key, value in data.items():
            accepted = _FIELD_TYPES.get(key)
            if accepted is None:
                raise ValueError(f"unknown behavior field {key!r}")
            # bool is an int subclass: do not let `"status": true` through as 1.
            bad_bool = isinstance(value, bool) and bool not in accepted
            if bad_bool or not isinstance(value, accepted):
                raise ValueError(f"behavior field {key!r} has the wrong type")
            changes[key] = value
        return replace(base or cls(), **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_NONE = type(None)
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "latency_ms": (int, float),
    "status": (int,),
    "error_message": (str,),
    "retry_after": (int, float, _NONE),
    "hang": (bool,),
    "malformed": (bool,),
    "truncated": (bool,),
    "reset": (bool,),
    "content": (str, _NONE),
    "tool_calls": (list, _NONE),
    "stream_chunks": (int,),
    "stream_delay_ms": (int, float),
    "stream_fail_after": (int, _NONE),
    "report_usage": (bool,),
    "prompt_tokens": (int, _NONE),
    "completion_tokens": (int, _NONE),
}
assert set(_FIELD_TYPES) == {f.name for f in fields(Behavior)}


def parse_behavior_header(raw: str, base: Behavior) -> Behavior:
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{BEHAVIOR_HEADER} is not valid JSON") from exc
    return Behavior.from_dict(data, base)


# (path, JSON body) -> the behaviour for this request, or None to fall back to the default.
Responder = Callable[[str, Any], "Behavior | None"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the upstream received it. Header names are lower-cased."""

    path: str
    method: str
    headers: dict[str, str]
    json: Any
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Exchange:
    """One request in flight: its behaviour, sequence number and how it ended."""

    __slots__ = ("_generation", "_state", "behavior", "finished", "seq")

    def __init__(self, state: UpstreamState, behavior: Behavior, seq: int, generation: int):
        self._state = state
        self._generation = generation
        self.behavior = behavior
        self.seq = seq
        self.finished = False

    def complete(self) -> None:
        """The reply (or the scripted failure) has been fully carried out."""
        self._state.finish(self, cancelled=False)

    def cancel(self) -> None:
        """The client went away first."""
        self._state.finish(self, cancelled=True)

    @property
    def generation(self) -> int:
        return self._generation


class UpstreamState:
    """Default behaviour, scripted queue, recorded requests and counters, behind one lock."""

    def __init__(self, default: Behavior, *, record: bool = True, max_recorded: int = 10_000):
        self._lock = threading.Lock()
        self._initial_default = default
        self._default = default
        self._script: deque[Behavior] = deque()
        self._record = record
        self._recorded: deque[RecordedRequest] = deque(maxlen=max_recorded)
        self._seq = 0
        # Bumped by reset(): requests begun before it no longer touch the new counters.
        self._generation = 0
        self._received = self._completed = self._cancelled = 0
        self._in_flight = 0  # a live count, never reset
        # In process only: picks the behaviour from the request body (a judge that scores by a
        # rule, a model that calls tools depending on the conversation). None from it: no say.
        self._responder: Responder | None = None

    def set_default(self, behavior: Behavior) -> None:
        with self._lock:
            self._default = behavior

    def set_responder(self, responder: Responder | None) -> None:
        with self._lock:
            self._responder = responder

    def set_script(self, behaviors: list[Behavior]) -> None:
        with self._lock:
            self._script = deque(behaviors)

    def reset(self) -> None:
        with self._lock:
            self._default = self._initial_default
            self._script.clear()
            self._responder = None
            self._recorded.clear()
            self._generation += 1
            self._received = self._completed = self._cancelled = 0

    def begin(
        self,
        path: str,
        method: str,
        headers: Mapping[str, str],
        body: Any,
    ) -> Exchange:
        """Count and record a request, and pick its behaviour.

        ``headers`` should look names up case-insensitively (aiohttp's do). A per-request
        header override is applied on top of the default and does not consume a scripted
        entry, so concurrent tests using headers do not eat each other's scripts.
        Raises ``ValueError`` for a bad override header (after counting the request).
        """
        override = headers.get(BEHAVIOR_HEADER)
        recorded = None
        if self._record:  # built outside the lock; skipped entirely for benchmarks
            lowered = {name.lower(): value for name, value in headers.items()}
            recorded = RecordedRequest(path, method, lowered, body, time.time())
        scripted = False
        with self._lock:
            self._seq += 1
            self._received += 1
            self._in_flight += 1
            if recorded is not None:
                self._recorded.append(recorded)
            responder = self._responder
            if override is not None:
                behavior = self._default
            elif self._script:
                behavior = self._script.popleft()
                scripted = True
            else:
                behavior = self._default
            exchange = Exchange(self, behavior, self._seq, self._generation)
        if override is None and responder is not None and not scripted:
            # Called outside the lock: a responder may be slow or call back into the state.
            try:
                chosen = responder(path, body)
            except Exception:
                exchange.complete()
                raise
            if chosen is not None:
                exchange.behavior = chosen
        if override is not None:
            try:
                exchange.behavior = parse_behavior_header(override, behavior)
            except ValueError:
                exchange.complete()
                raise
        return exchange

    def finish(self, exchange: Exchange, *, cancelled: bool) -> None:
        with self._lock:
            if exchange.finished:
                return
            exchange.finished = True
            self._in_flight -= 1
            if exchange.generation != self._generation:
                return
            if cancelled:
                self._cancelled += 1
            else:
                self._completed += 1

    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._recorded)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "received": self._received,
                "completed": self._completed,
                "cancelled": self._cancelled,
                "in_flight": self._in_flight,
            }
