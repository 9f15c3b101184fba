"""The embedded ``local`` provider: extractive answers and MiniLM embeddings, on this CPU.

Models: ``extractive`` (chat) and ``all-MiniLM-L6-v2`` (embeddings). No network, no keys.

Every piece of CPU work runs in one bounded thread pool, so the event loop never blocks:
``local.threads`` calls run at once and at most ``local.max_queue`` more wait; beyond that a
call is shed with :class:`Overloaded` at once rather than queueing without limit.

What the local model does with OpenAI request fields:
- ``max_tokens`` / ``max_completion_tokens``: the answer is cut after that many tokens (MiniLM
  tokenizer), ``finish_reason`` "length".
- ``stop``: the answer is cut before the first stop string.
- ``response_format`` json_object / json_schema: the content is the JSON object
  ``{"answer": str, "citations": [{"index", "snippet", "score"}]}`` (whatever the schema says;
  output guards validate schemas). With ``max_tokens`` only the answer text is cut, so the
  JSON stays valid.
- ``tools``, ``tool_choice``, ``temperature``, ``n``, ``seed``...: ignored; the answer is
  deterministic and there is one choice.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

from groundgate.config import LocalModelConfig, ProviderConfig
from groundgate.errors import (
    InvalidRequest,
    Overloaded,
    ProviderError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from groundgate.providers.base import ChatCall, Chunk, Completion, Embeddings, Usage
from groundgate.providers.local.answerer import ExtractiveAnswerer
from groundgate.providers.local.embedder import (
    INT8_MODEL_ID,
    MiniLMEmbedder,
    find_model_path,
    find_tokenizer_path,
)
from groundgate.providers.local.models import (
    CHAT_MODEL,
    FLOAT32_EMBEDDER,
    INT8_EMBEDDER,
    MODEL_NEEDS,
    LocalModels,
    ModelLoadFailed,
    process_models,
)
from groundgate.providers.local.sentences import message_text

EMBEDDING_MODEL = MiniLMEmbedder.model_id
EMBEDDING_MODELS = (EMBEDDING_MODEL, INT8_MODEL_ID)
FINGERPRINT = "local-extractive-v1"
# Words per streamed piece: small enough to look like streaming, big enough to be cheap.
_WORDS_PER_CHUNK = 3
_PIECE_BREAK = re.compile(r"(?<=\s)(?=\S)")

T = TypeVar("T")


class LocalProvider:
    """Implements ``Provider`` and ``ManagedProvider`` (see ``providers/base.py``)."""

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        local: LocalModelConfig,
        *,
        embedder: MiniLMEmbedder | None = None,
        models: LocalModels | None = None,
        serves: Iterable[str] = (),
    ) -> None:
        """``embedder``: an already loaded float32 embedder to use (tests); ``models``: where
        models are loaded (default: the process's, shared by every local provider);
        ``serves``: the model names config deploys on this provider, which ``local.preload``
        loads at start."""
        self.name = name
        self.config = config
        self.local = local
        self._pool: ThreadPoolExecutor | None = None
        self._start_lock = asyncio.Lock()
        self._given_embedder = embedder
        self._models = models or process_models()
        self._serves = frozenset(m.lower() for m in serves)
        self._answerer: ExtractiveAnswerer | None = None
        self._state = "not started"
        self._load_error: str | None = None
        self._closed = False
        # Running plus waiting calls. Changed from worker threads too, hence the lock.
        self._inflight = 0
        self._inflight_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Check that the model files are installed (cheap: nothing is loaded) and, with
        ``local.preload``, load the models this provider serves; later calls return at once.
        Otherwise a model loads when the first call needs it (``models.py``)."""
        async with self._start_lock:
            if self._closed:
                raise UpstreamUnavailable(f"local provider {self.name!r} is closed", transient=True)
            if self._load_error is not None:
                raise UpstreamUnavailable(self._load_error, transient=False)
            if self._pool is not None:
                return
            try:
                if self._given_embedder is None:
                    # A broken install fails the start, as it did when every start loaded.
                    find_model_path()
                    find_tokenizer_path()
            except Exception as exc:
                self._failed_to_load(exc)
            pool = ThreadPoolExecutor(self.local.threads, f"groundgate-{self.name}")
            if self.local.preload:
                self._state = "loading models (local.preload)"
                try:
                    await asyncio.get_running_loop().run_in_executor(pool, self._preload)
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
            self._pool = pool
            self._state = "ok"

    def _preload(self) -> None:
        for model_id in sorted({MODEL_NEEDS[m] for m in self._serves if m in MODEL_NEEDS}):
            self._load(model_id)

    def _load(self, model_id: str) -> None:
        if model_id == INT8_EMBEDDER:
            self._int8_embedder()
        else:
            self._float32_embedder()

    async def warm(self, model: str) -> None:
        """Load what ``model`` needs, in the pool, if it is not loaded yet (a request waits
        here for the load, bounded by its own deadline, not by a stage's budget)."""
        needed = MODEL_NEEDS.get(model.lower())
        if needed is None or self._pool is None or self._closed:
            return  # an unknown model or a stopped provider: the call itself says so
        if self._models.loaded().get(needed, {}).get("loaded"):
            return
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load, needed)

    async def aclose(self) -> None:
        self._closed = True
        self._state = "closed"
        if self._pool is not None:
            # Never wait on the event loop: running work finishes on its own, queued work
            # is cancelled and its callers get UpstreamUnavailable.
            self._pool.shutdown(wait=False, cancel_futures=True)

    def readiness(self) -> tuple[bool, str]:
        if self._load_error is not None and not self._closed:
            return False, self._load_error
        return (self._state == "ok" and not self._closed), self._state

    # -- Provider ------------------------------------------------------------------------

    async def complete(self, call: ChatCall, model: str, *, timeout: float) -> Completion:
        self._check_model(model, (CHAT_MODEL,), "chat")
        options = _ChatOptions.from_params(call.params)
        return await self._run(
            self._complete_sync, call.messages, options, timeout=timeout, model=model
        )

    async def stream(self, call: ChatCall, model: str, *, timeout: float) -> AsyncIterator[Chunk]:
        # The whole answer is computed first (it is one quick extraction), so errors surface
        # before the first chunk; then it is replayed in pieces.
        completion = await self.complete(call, model, timeout=timeout)
        choice = completion.choices[0]
        content: str = choice["message"]["content"]
        cid = completion.id
        fp = completion.system_fingerprint
        yield Chunk([_delta({"role": "assistant", "content": ""})], id=cid, system_fingerprint=fp)
        pieces = _PIECE_BREAK.split(content) if content else []
        for i in range(0, len(pieces), _WORDS_PER_CHUNK):
            text = "".join(pieces[i : i + _WORDS_PER_CHUNK])
            yield Chunk([_delta({"content": text})], id=cid, system_fingerprint=fp)
            await asyncio.sleep(0)  # let other requests run between pieces
        last = _delta({}, finish_reason=choice["finish_reason"])
        yield Chunk(
            [last], usage=completion.usage, id=cid, system_fingerprint=fp, extra=completion.extra
        )

    async def embed(self, inputs: list[str], model: str, *, timeout: float) -> Embeddings:
        self._check_model(model, EMBEDDING_MODELS, "embedding")
        if not inputs:
            raise InvalidRequest("input must not be empty", param="input")
        for i, text in enumerate(inputs):
            if not isinstance(text, str) or not text:
                raise InvalidRequest(f"input[{i}] must be a non-empty string", param="input")
        int8 = model.lower() == INT8_MODEL_ID.lower()
        return await self._run(self._embed_sync, inputs, int8, timeout=timeout, model=model)

    # -- the pool ------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any, timeout: float, model: str) -> T:
        if self._pool is None or self._closed or self._load_error is not None:
            await self.start()  # lazily, for callers that skipped start(); raises if closed
        assert self._pool is not None
        with self._inflight_lock:
            if self._inflight >= self.local.threads + self.local.max_queue:
                raise Overloaded(
                    f"local provider {self.name!r} is busy ({self._inflight} calls running or "
                    "queued); try again shortly",
                    retry_after=1.0,
                )
            self._inflight += 1
        try:
            future = self._pool.submit(fn, *args)
        except RuntimeError as exc:  # the pool was shut down under us
            self._release()
            raise UpstreamUnavailable(
                f"local provider {self.name!r} is closed", transient=True
            ) from exc
        # Released when the work really ends, not when the caller stops waiting: a timed-out
        # call still occupies a thread, and the bound must count it.
        future.add_done_callback(lambda _: self._release())
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            raise UpstreamTimeout(
                f"local model {model!r} did not finish within {timeout:.2f}s",
                deployment=f"{self.name}:{model}",
            ) from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if future.cancelled() and self._closed and not (task and task.cancelling()):
                raise UpstreamUnavailable(
                    f"local provider {self.name!r} was closed", transient=True
                ) from None
            raise

    def _release(self) -> None:
        with self._inflight_lock:
            self._inflight -= 1

    def _check_model(self, model: str, expected: tuple[str, ...], kind: str) -> None:
        if model.lower() not in {name.lower() for name in expected}:
            embedders = " and ".join(repr(m) for m in EMBEDDING_MODELS)
            raise ProviderError(
                f"local provider {self.name!r} has no {kind} model {model!r}; "
                f"its models are {CHAT_MODEL!r} (chat) and {embedders} (embeddings)",
                transient=False,
                deployment=f"{self.name}:{model}",
            )

    # -- work done in the pool -----------------------------------------------------------

    def _complete_sync(self, messages: list[dict[str, Any]], options: _ChatOptions) -> Completion:
        embedder = self._float32_embedder()
        answer = self._answerer_of(embedder).answer_messages(messages)
        text, finish = options.cut(answer.text, embedder)
        citations = [c.as_dict() for c in answer.citations]
        content = (
            json.dumps({"answer": text, "citations": citations}, ensure_ascii=False)
            if options.json_mode
            else text
        )
        prompt = embedder.count_tokens([message_text(m) for m in messages])
        usage = Usage(sum(prompt), embedder.count_tokens([content])[0])
        message = {"role": "assistant", "content": content}
        return Completion(
            choices=[{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            usage=usage,
            id=f"chatcmpl-{secrets.token_hex(12)}",
            created=int(time.time()),
            system_fingerprint=FINGERPRINT,
            extra={"citations": citations, "abstained": answer.abstained},
        )

    def _embed_sync(self, inputs: list[str], int8: bool) -> Embeddings:
        embedder = self._int8_embedder() if int8 else self._float32_embedder()
        vectors = embedder.embed(inputs)
        # Both variants share one tokenizer: an int8-only gateway never loads the float32 one.
        tokens = sum(embedder.count_tokens(inputs))
        return Embeddings(vectors=vectors.tolist(), usage=Usage(tokens, 0))

    # -- models, loaded on first use (in a worker thread) ----------------------------------

    def _float32_embedder(self) -> MiniLMEmbedder:
        if self._given_embedder is not None:
            return self._given_embedder
        try:
            return self._models.embedder(FLOAT32_EMBEDDER, solo_threads=self._solo_threads())
        except ModelLoadFailed as exc:
            self._failed_to_load(exc)

    def _failed_to_load(self, exc: Exception) -> NoReturn:
        """The core model cannot load: not retryable, and the provider is not ready."""
        self._load_error = f"local provider {self.name!r} cannot load its model: {exc}"
        self._state = self._load_error
        raise UpstreamUnavailable(self._load_error, transient=False) from exc

    def _int8_embedder(self) -> MiniLMEmbedder:
        try:
            return self._models.embedder(INT8_EMBEDDER)
        except ModelLoadFailed as exc:  # fails that model's calls only
            raise ProviderError(
                f"local provider {self.name!r} cannot load {INT8_MODEL_ID!r}: {exc}",
                transient=False,
                deployment=f"{self.name}:{INT8_MODEL_ID}",
            ) from exc

    def _answerer_of(self, embedder: MiniLMEmbedder) -> ExtractiveAnswerer:
        # Built on first use; two threads racing build two equal ones, which is harmless.
        answerer = self._answerer
        if answerer is None:
            answerer = self._answerer = ExtractiveAnswerer(
                embedder.embed,
                min_support=self.local.min_support,
                max_sentences=self.local.max_sentences,
            )
        return answerer

    def _solo_threads(self) -> int:
        return self.local.solo_threads or min(self.local.threads, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class _ChatOptions:
    """The request fields the local model honours, validated before any work is queued."""

    max_tokens: int | None
    stop: list[str]
    json_mode: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> _ChatOptions:
        max_tokens: int | None = None
        for key in ("max_completion_tokens", "max_tokens"):
            value = params.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidRequest(f"{key} must be a positive integer", param=key)
            max_tokens = value if max_tokens is None else min(max_tokens, value)
        raw_stop = params.get("stop")
        stop = [raw_stop] if isinstance(raw_stop, str) else list(raw_stop or [])
        stop = [s for s in stop if isinstance(s, str) and s]
        response_format = params.get("response_format")
        json_mode = isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        )
        return cls(max_tokens, stop, json_mode)

    def cut(self, text: str, embedder: MiniLMEmbedder) -> tuple[str, str]:
        """``text`` after ``stop`` and ``max_tokens``, and the finish reason."""
        cuts = [text.find(s) for s in self.stop if s in text]
        if cuts:
            text = text[: min(cuts)]
        if self.max_tokens is not None:
            text, truncated = embedder.truncate_to_tokens(text, self.max_tokens)
            if truncated:
                return text, "length"
        return text, "stop"


def _delta(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
