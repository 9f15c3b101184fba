"""The embedded models of this process: loaded when a request first needs one (or at start
with ``[local] preload = true``), once per process, and shared by every local provider.

A model is an ONNX session plus its tokenizer, ~120 MB resident for the float32 embedder with
its second ("solo") session; a gateway whose traffic never reaches the local model should not
pay for it. The first requests to need a model wait for its load (about half a second; the
int8 variant's very first load also derives its file, ~2 s); concurrent first requests wait
for the same load rather than each starting one.

Loads run in the calling thread (callers are worker threads, never the event loop), under one
lock per model, so a load is single even when requests from several event loops or threads
race for it. A failed load is remembered and raised again without retrying: what makes a load
fail (a missing package, a corrupt file) does not mend itself while the process runs.

This module imports nothing heavy: onnxruntime and tokenizers are imported by the embedder
when the first model loads (``/readyz`` reports which models are loaded).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from groundgate.config import Settings, split_deployment
from groundgate.providers.local.embedder import INT8_MODEL_ID, MODEL_ID, MiniLMEmbedder

# The model ids, as deployments name them ("local:all-MiniLM-L6-v2").
FLOAT32_EMBEDDER = MODEL_ID
INT8_EMBEDDER = INT8_MODEL_ID
# The chat model quotes sentences scored with the float32 embedder: it needs that model.
CHAT_MODEL = "extractive"
# Which embedder each model the local provider serves needs, by lower-cased name.
MODEL_NEEDS = {
    CHAT_MODEL: FLOAT32_EMBEDDER,
    FLOAT32_EMBEDDER.lower(): FLOAT32_EMBEDDER,
    INT8_EMBEDDER.lower(): INT8_EMBEDDER,
}
# Builds an embedder: (model id, ONNX threads of its solo session) -> the loaded model.
Loader = Callable[[str, int], MiniLMEmbedder]


class ModelLoadFailed(RuntimeError):
    """A model could not be loaded; the message says why (and what to install)."""


@dataclass
class _Slot:
    """One model: not loaded, loading, loaded, or failed."""

    load: Callable[[], MiniLMEmbedder]
    lock: threading.Lock
    model: MiniLMEmbedder | None = None
    error: str | None = None
    loading: bool = False
    load_ms: float | None = None

    def get(self) -> MiniLMEmbedder:
        model = self.model
        if model is not None:  # the common case: no lock once loaded
            return model
        with self.lock:
            if self.model is not None:
                return self.model
            if self.error is not None:
                raise ModelLoadFailed(self.error)
            self.loading = True
            started = time.perf_counter()
            try:
                self.model = self.load()
            except Exception as exc:  # a missing package, a corrupt file, an unwritable disk
                self.error = f"{type(exc).__name__}: {exc}"
                raise ModelLoadFailed(self.error) from exc
            finally:
                self.loading = False
            self.load_ms = (time.perf_counter() - started) * 1000
            return self.model

    def state(self) -> dict[str, object]:
        if self.model is not None:
            return {"loaded": True, "load_ms": round(self.load_ms or 0.0, 1)}
        if self.error is not None:
            return {"loaded": False, "error": self.error}
        return {"loaded": False, "loading": self.loading}


class LocalModels:
    """The models of one process, each loaded at most once (see the module docstring)."""

    def __init__(self, loader: Loader | None = None) -> None:
        """``loader``: how a model is built (default: :class:`MiniLMEmbedder` from the
        installed packages)."""
        self._loader = loader or _load_embedder
        self._slots: dict[tuple[str, int], _Slot] = {}
        self._lock = threading.Lock()

    def embedder(self, model_id: str, *, solo_threads: int = 1) -> MiniLMEmbedder:
        """The embedder ``model_id`` (``FLOAT32_EMBEDDER`` or ``INT8_EMBEDDER``), loaded now
        if no caller has loaded it yet. Blocks while it loads: call it from a worker thread.
        Raises :class:`ModelLoadFailed`."""
        if model_id == INT8_EMBEDDER:
            # One session: a lone int8 call is no faster on two threads (~2.6 ms p50 on one,
            # ~3.3 on two; bench/cache_latency.py).
            solo_threads = 1
        elif model_id != FLOAT32_EMBEDDER:
            raise ValueError(f"no local embedder {model_id!r}")
        key = (model_id, solo_threads)
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                load = functools.partial(self._loader, model_id, solo_threads)
                slot = self._slots[key] = _Slot(load, threading.Lock())
        return slot.get()

    def loaded(self) -> dict[str, dict[str, object]]:
        """Per model id, whether it is loaded (and how long that took), loading, or failed."""
        with self._lock:
            slots = list(self._slots.items())
        states: dict[str, dict[str, object]] = {
            model_id: {"loaded": False, "loading": False}
            for model_id in (FLOAT32_EMBEDDER, INT8_EMBEDDER)
        }
        for (model_id, _), slot in slots:
            state = slot.state()
            if state["loaded"] or not states[model_id]["loaded"]:
                states[model_id] = state
        return states


def _load_embedder(model_id: str, solo_threads: int) -> MiniLMEmbedder:
    return MiniLMEmbedder(solo_threads=solo_threads, int8=model_id == INT8_EMBEDDER)


_PROCESS_MODELS = LocalModels()


def process_models() -> LocalModels:
    """The models of this process, shared by every local provider in it."""
    return _PROCESS_MODELS


def deployed_models(provider: str, settings: Settings) -> set[str]:
    """The upstream model names config deploys on ``provider`` (models and embedders)."""
    deployments = [
        split_deployment(dep)
        for table in (settings.models, settings.embedders)
        for entry in table.values()
        for dep in entry.deployments
    ]
    return {model for name, model in deployments if name == provider}
