"""All input guards together on ~500-token prompts, through the real ``guard_in`` stage, with
the semantic cache's lookup after it (which reuses the question's embedding).

Each prompt is new to the process (no embedding cached yet), so every measurement pays for one
question embedding: the all-MiniLM-L6-v2 int8 model reads at most 256 tokens of it. Guards on:
secrets and PII (redact, PII restorable), injection (flag), topics (flag, 3 deny topics) and
the size and language limits, as an app would run them; the latency is the stage's own time.

    python bench/guards.py --input-guards FILE [--json OUT]

``FILE``: JSONL with ``text`` or ``context`` (any prose: prompts are built by joining its
texts to ~500 tokens, each prompt from a different slice).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from groundgate.config import Settings, load_settings
from groundgate.container import Container
from groundgate.pipeline.stages.cache import Cache
from groundgate.pipeline.stages.guard_in import GuardIn
from groundgate.providers.base import ChatCall
from groundgate.retrieval.chunking import estimate_tokens

CONFIG = """
[store]
path = "{tmp}/bench.db"
[models.guarded]
deployments = ["local:extractive"]
cache = {{ exact = true, semantic = true }}
[models.guarded.guards]
secrets = "redact"
pii = {{ action = "redact", restore = true }}
injection = "flag"
topics = {{ action = "flag", deny = ["medical advice", "legal advice", "cooking recipes"] }}
limits = {{ action = "flag", max_chars = 100000, languages = ["en"] }}
"""
TARGET_TOKENS = 500


def prompts(path: Path, count: int) -> list[str]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    texts = [str(row.get("text") or row.get("context") or "") for row in rows]
    built: list[str] = []
    i = 0
    while len(built) < count and i < len(texts):
        parts: list[str] = []
        while i < len(texts) and estimate_tokens(" ".join(parts)) < TARGET_TOKENS:
            parts.append(texts[i])
            i += 1
        built.append(" ".join(parts) + "\nWhat does the text above ask for?")
    if len(built) < count:
        raise SystemExit(f"{path} has text for {len(built)} prompts of ~500 tokens, not {count}")
    return built


async def _measure(settings: Settings, texts: list[str]) -> dict[str, Any]:
    container = Container(settings)
    await container.start()
    try:
        pipeline = container.pipelines.models["guarded"]
        guard = next(s for s in pipeline.stages if isinstance(s, GuardIn))
        cache = next(s for s in pipeline.stages if isinstance(s, Cache))
        # The models load once per process (lazily): not part of any request's cost.
        await guard.enter(_ctx(container, "Warm the embedder and the language model up."))
        guarded, lookups, embeds = [], [], 0
        parts: dict[str, list[float]] = {}
        for text in texts:
            ctx = _ctx(container, text)
            started = time.perf_counter()
            await guard.enter(ctx)
            guarded.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await cache.enter(ctx)
            lookups.append((time.perf_counter() - started) * 1000)
            embeds += len(ctx.vectors)
            for name, ms in ctx.guards.checked_ms.items():
                parts.setdefault(name, []).append(ms)
    finally:
        await container.stop()
    tokens = [estimate_tokens(t) for t in texts]
    return {
        "prompts": len(texts),
        "tokens_mean": round(statistics.mean(tokens), 1),
        "p50_ms": round(statistics.median(guarded), 3),
        "p99_ms": round(_percentile(guarded, 0.99), 3),
        "max_ms": round(max(guarded), 3),
        "cache_lookup_after_p50_ms": round(statistics.median(lookups), 3),
        "embeddings_per_request": round(embeds / len(texts), 3),
        "parts_p50_ms": {k: round(statistics.median(v), 3) for k, v in parts.items()},
    }


def _ctx(container: Container, text: str) -> Any:
    return container.new_chat("guarded", ChatCall(messages=[{"role": "user", "content": text}]))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def evaluate_input_guards(path: Path, count: int = 100) -> dict[str, Any]:
    texts = prompts(path, count)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "groundgate.toml"
        config.write_text(CONFIG.format(tmp=tmp), encoding="utf-8")
        return asyncio.run(_measure(load_settings(config), texts))
