"""A workload replay with repeated and paraphrased questions through the response cache: the
upstream calls and the cost it saves, its hits by kind, and its false hits.

    python bench/cache_replay.py [--requests 2000] [--latency-ms 50] [--json OUT]

The workload comes from QQP dev (``../shared/data/qqp/dev.jsonl``: text_a, text_b, label),
in a random order where every repeat comes after what it repeats:

* 70% first-time questions (distinct after normalisation), among them a few hard
  non-duplicates (``--hard``, default 2% of the requests): the ``text_b`` of a pair labelled
  0 with cosine >= 0.97 whose ``text_a`` was asked earlier -- a hit on one is wrong;
* 30% repeats of earlier first-time questions, half exact or cosmetic repeats (the same text
  with case, whitespace, punctuation, a typographic apostrophe, a greeting or a "thanks"
  changed: all equal after normalisation) and half paraphrases (the ``text_b`` of a pair
  labelled duplicate whose ``text_a`` was asked earlier; QQP's own duplicates, so most are
  looser than the cache's 0.99 threshold allows).

Everything is sent, one request at a time, through a gateway (memory backend, open mode) to
a fake upstream (``--latency-ms``, default 50) whose answer echoes the question, with
``completion_tokens`` fixed at ``--completion-tokens`` (a typical answer; prompt tokens are
the question's words); model ``bench`` caches exactly and semantically at the DEFAULT
threshold; prices 0.15 / 0.60 USD per million input / output tokens.

Reported: upstream calls made (the fake's own count) against one per request without a
cache; cost paid (``x-groundgate-cost-usd``) against paid + saved (``groundgate.cache.
saved_usd`` of each hit: what its answer cost when it was made); hits by kind and by workload
kind; the hit rate on repeats; false hits (a hit whose answer, the echoed question, belongs
to a question that is neither the asked one after normalisation nor a labelled duplicate of
it); client-side p50/p99 of hits and misses; guard rejections (``/metrics``).

Similarities (to pick hard non-duplicates and to say which paraphrases could hit at all) use
the MiniLM vectors of ``bench/semantic_cache.py``'s ``.bench-cache/`` file when present, else
those of the first pairs, embedded once (see ``bench/cache_latency.py``). Loopback only; every
process and temporary directory this starts is removed on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import orjson
from numpy.typing import NDArray
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import Server, run_loop, start_fake_upstream, start_gateway, temp_dir
from cache_latency import load_rows, qqp_vectors, stats_ms
from groundgate.cache.normalize import normalize_question
from groundgate.cache.semantic import DEFAULT_THRESHOLD

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "qqp" / "dev.jsonl"
HARD_MIN_SIMILARITY = 0.97
PRICE_IN, PRICE_OUT = 0.15, 0.60  # USD per million tokens

CONFIG = """
[server]
log_level = "warning"

[store]
path = "{workdir}/bench.db"

[auth]
mode = "open"

[traces]
flush_interval_ms = 50

[providers.upstream]
type = "openai"
base_url = "%(upstream)s/v1"
max_connections = 256

[models.bench]
deployments = ["upstream:gpt-4o-mini"]
cache = { exact = true, semantic = true }

[prices."upstream:gpt-4o-mini"]
input_per_mtok = %(price_in)s
output_per_mtok = %(price_out)s
"""

# Cosmetic changes that normalisation undoes (checked for each repeat).
COSMETIC: list[tuple[str, Callable[[str], str]]] = [
    ("verbatim", lambda t: t),
    ("lower case", str.lower),
    ("upper case", str.upper),
    ("extra spaces", lambda t: "  " + t.replace(" ", "  ") + " "),
    ("no final punctuation", lambda t: t.rstrip(" ?!.")),
    ("doubled question mark", lambda t: t.rstrip(" ?") + "??"),
    ("typographic apostrophe", lambda t: t.replace("'", "\u2019")),
    ("greeting", lambda t: "Hi, " + t),
    ("thanks", lambda t: t.rstrip(" ?") + "? Thanks!"),
]


@dataclass
class Item:
    kind: str  # first | hard_negative | cosmetic | paraphrase
    text: str
    source: str | None = None  # the earlier question it repeats, paraphrases or resembles
    variant: str | None = None  # the cosmetic change, for cosmetic repeats
    similarity: float | None = None  # cosine to its source (paraphrases, hard negatives)
    at: float = 0.0  # place in the workload, 0..1


@dataclass
class Workload:
    items: list[Item]
    duplicates: set[frozenset[str]]  # labelled duplicate pairs, normalised
    paraphrase_pool: int
    hard_pool: int
    notes: dict[str, Any] = field(default_factory=dict)


def build_workload(args: argparse.Namespace) -> Workload:
    rows = load_rows(args.data)
    vectors = qqp_vectors(rows, args.data, args.fallback_pairs)
    rng = random.Random(args.seed)

    def sim(a: str, b: str) -> float | None:
        va, vb = vectors.get(normalize_question(a)), vectors.get(normalize_question(b))
        return None if va is None or vb is None else float(np.dot(va, vb))

    duplicates = {
        frozenset((normalize_question(r["text_a"]), normalize_question(r["text_b"])))
        for r in rows
        if r["label"] == 1
    }
    n = args.requests
    repeats = round(n * args.repeat_share)
    paraphrases = repeats // 2
    cosmetics = repeats - paraphrases
    hard = min(args.hard, n - repeats)
    firsts = n - repeats  # hard negatives included

    # Pairs whose two questions differ after normalisation; paraphrases are labelled 1.
    pairs = [r for r in rows if normalize_question(r["text_a"]) != normalize_question(r["text_b"])]
    rng.shuffle(pairs)
    para_pool = [r for r in pairs if r["label"] == 1]
    hard_pool = [
        r
        for r in pairs
        if r["label"] == 0 and (s := sim(r["text_a"], r["text_b"])) is not None
        if s >= HARD_MIN_SIMILARITY
    ]
    used: set[str] = set()  # normalised texts already in the workload
    items: list[Item] = []

    def take(text: str) -> bool:
        key = normalize_question(text)
        if key in used:
            return False
        used.add(key)
        return True

    def pick_pairs(pool: list[dict[str, Any]], count: int, kind: str) -> list[Item]:
        """``count`` pairs: text_a asked as a first-time question, text_b later as ``kind``."""
        out: list[Item] = []
        for r in pool:
            if len(out) >= 2 * count:
                break
            a, b = r["text_a"], r["text_b"]
            ka, kb = normalize_question(a), normalize_question(b)
            if ka in used or kb in used:
                continue
            used.update((ka, kb))
            out.append(Item("first", a))
            out.append(Item(kind, b, source=a, similarity=sim(a, b)))
        return out

    items += pick_pairs(hard_pool, hard, "hard_negative")
    items += pick_pairs(para_pool, paraphrases, "paraphrase")
    first_count = sum(i.kind in ("first", "hard_negative") for i in items)
    for r in pairs:  # the remaining first-time questions
        if first_count >= firsts:
            break
        text = r["text_a"] if rng.random() < 0.5 else r["text_b"]
        if take(text):
            items.append(Item("first", text))
            first_count += 1
    if first_count < firsts:
        raise RuntimeError("not enough distinct questions in the data for this workload")
    sources = [i for i in items if i.kind == "first"]
    for _ in range(cosmetics):
        source = rng.choice(sources).text
        name, change = rng.choice(COSMETIC)
        text = change(source)
        if normalize_question(text) != normalize_question(source):
            name, text = "verbatim", source  # a change normalisation keeps: use the text as is
        items.append(Item("cosmetic", text, source=source, variant=name))

    # Order: first-time questions anywhere; each dependent item after its source.
    place = {}
    for item in items:
        if item.kind == "first":
            item.at = rng.random()
            place[item.text] = item.at
    for item in items:
        if item.source is not None:
            start = place[item.source]
            item.at = start + (1 - start) * rng.random()
    items.sort(key=lambda i: i.at)
    return Workload(
        items,
        duplicates,
        paraphrase_pool=len(para_pool),
        hard_pool=len(hard_pool),
        notes={"vectors": len(vectors)},
    )


def is_same_question(asked: str, cached: str, duplicates: set[frozenset[str]]) -> bool:
    a, c = normalize_question(asked), normalize_question(cached)
    return a == c or frozenset((a, c)) in duplicates


# ---------------------------------------------------------------- replay


async def replay(gateway: str, upstream: str, workload: Workload) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=60)
    records: list[dict[str, Any]] = []
    async with aiohttp.ClientSession(timeout=timeout) as session:
        before = await fake_stats(session, upstream)
        started = time.perf_counter()
        with Progress(transient=True) as bar:
            task = bar.add_task(f"replaying {len(workload.items):,} requests", total=None)
            bar.update(task, total=len(workload.items))
            for item in workload.items:
                body = orjson.dumps(
                    {
                        "model": "bench",
                        "messages": [{"role": "user", "content": item.text}],
                        "temperature": 0,
                    }
                )
                t0 = time.perf_counter()
                async with session.post(
                    gateway + "/v1/chat/completions",
                    data=body,
                    headers={"content-type": "application/json"},
                ) as resp:
                    raw = await resp.read()
                    elapsed = (time.perf_counter() - t0) * 1000
                    if resp.status != 200:
                        raise RuntimeError(f"{resp.status}: {raw[:300]!r}")
                    headers = resp.headers
                    data = orjson.loads(raw)
                cache = data["groundgate"].get("cache", {})
                answer = data["choices"][0]["message"]["content"]
                records.append(
                    {
                        "item": item,
                        "status": headers.get("x-groundgate-cache", "none"),
                        "similarity": cache.get("similarity"),
                        "cost_usd": float(headers.get("x-groundgate-cost-usd", "0")),
                        "saved_usd": float(cache.get("saved_usd", 0.0)),
                        "usage": data.get("usage", {}),
                        "answer": answer,
                        "ms": elapsed,
                    }
                )
                bar.advance(task)
        wall = time.perf_counter() - started
        after = await fake_stats(session, upstream)
        async with session.get(gateway + "/metrics") as resp:
            metrics = await resp.text()
    return {
        "records": records,
        "upstream_calls": after["received"] - before["received"],
        "wall_s": wall,
        "metrics": metrics,
    }


async def fake_stats(session: aiohttp.ClientSession, upstream: str) -> dict[str, int]:
    async with session.get(upstream + "/__control/stats") as resp:
        return dict(await resp.json())


def analyse(workload: Workload, run: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    records = run["records"]
    n = len(records)
    hits = [r for r in records if r["status"] in ("exact", "semantic")]
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        by_kind[r["item"].kind][r["status"]] += 1
    false_hits = []
    for r in hits:
        cached = r["answer"].removeprefix("echo: ")
        if not is_same_question(r["item"].text, cached, workload.duplicates):
            false_hits.append(
                {
                    "kind": r["item"].kind,
                    "status": r["status"],
                    "similarity": r["similarity"],
                    "asked": r["item"].text,
                    "answered_for": cached,
                }
            )
    repeats = [r for r in records if r["item"].kind in ("cosmetic", "paraphrase")]
    repeat_hits = sum(r["status"] in ("exact", "semantic") for r in repeats)
    paid = sum(r["cost_usd"] for r in records)
    saved = sum(r["saved_usd"] for r in hits)
    paraphrase_sims = [
        r["item"].similarity
        for r in records
        if r["item"].kind == "paraphrase" and r["item"].similarity is not None
    ]
    hard_sims = [
        r["item"].similarity
        for r in records
        if r["item"].kind == "hard_negative" and r["item"].similarity is not None
    ]
    miss_ms = [r["ms"] for r in records if r["status"] not in ("exact", "semantic")]
    guard = {}
    for line in run["metrics"].splitlines():
        if line.startswith("groundgate_cache_guard_rejections_total{"):
            rule = re.search(r'rule="([^"]+)"', line)
            guard[rule.group(1) if rule else line] = float(line.rsplit(" ", 1)[1])
    return {
        "requests": n,
        "workload": dict(Counter(r["item"].kind for r in records)),
        "cosmetic_variants": dict(
            Counter(r["item"].variant for r in records if r["item"].kind == "cosmetic")
        ),
        "upstream_calls": {
            "with_cache": run["upstream_calls"],
            "without_cache": n,
            "saved": n - run["upstream_calls"],
            "saved_share": round((n - run["upstream_calls"]) / n, 4),
            "misses_seen_by_client": len(records) - len(hits),
        },
        "cost_usd": {
            "with_cache": round(paid, 8),
            "without_cache": round(paid + saved, 8),
            "saved": round(saved, 8),
            "saved_share": round(saved / (paid + saved), 4) if paid + saved else None,
            "note": "without = paid + each hit's saved_usd (what its answer cost when made)",
        },
        "hits": dict(Counter(r["status"] for r in hits)),
        "status_by_workload_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        "repeat_hit_rate": round(repeat_hits / len(repeats), 4) if repeats else None,
        "cosmetic_hit_rate": rate(by_kind["cosmetic"]),
        "paraphrase_hit_rate": rate(by_kind["paraphrase"]),
        "paraphrases_at_or_above_threshold": sum(s >= DEFAULT_THRESHOLD for s in paraphrase_sims),
        "paraphrase_similarity": quantiles(paraphrase_sims),
        "hard_negative_similarity": quantiles(hard_sims),
        "hard_negatives_at_or_above_threshold": sum(s >= DEFAULT_THRESHOLD for s in hard_sims),
        "false_hits": len(false_hits),
        "false_hit_examples": false_hits[:20],
        "latency_ms": {
            "hit": stats_ms([r["ms"] for r in hits]),
            "exact_hit": stats_ms([r["ms"] for r in hits if r["status"] == "exact"]),
            "semantic_hit": stats_ms([r["ms"] for r in hits if r["status"] == "semantic"]),
            "miss": stats_ms(miss_ms),
        },
        "guard_rejections": guard,
        "replay_wall_s": round(run["wall_s"], 1),
    }


def rate(counts: Counter[str]) -> float | None:
    total = sum(counts.values())
    return round((counts["exact"] + counts["semantic"]) / total, 4) if total else None


def quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array: NDArray[np.float64] = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(array, q)), 4) for q in (0, 10, 50, 90, 100)}


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2_000, help="workload size")
    parser.add_argument("--repeat-share", type=float, default=0.30, help="share of repeats")
    parser.add_argument("--hard", type=int, default=None, help="hard non-duplicates (2%%)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="fake upstream latency")
    parser.add_argument("--completion-tokens", type=int, default=250, help="per upstream answer")
    parser.add_argument("--fallback-pairs", type=int, default=3_000, help="see the docstring")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="QQP-style JSONL")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    if args.hard is None:
        args.hard = max(1, round(0.02 * args.requests))
    if not args.data.is_file():
        sys.exit(f"no data file at {args.data}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    began = time.perf_counter()
    load_before = round(os.getloadavg()[0], 2)
    workload = build_workload(args)
    servers: list[Server] = []
    try:
        with temp_dir("groundgate-cache-replay-") as root:
            upstream = start_fake_upstream(args.latency_ms)
            servers.append(upstream)
            set_default_behavior(
                upstream.url,
                {"latency_ms": args.latency_ms, "completion_tokens": args.completion_tokens},
            )
            config = CONFIG % {
                "upstream": upstream.url,
                "price_in": PRICE_IN,
                "price_out": PRICE_OUT,
            }
            gateway = start_gateway(config, root)
            servers.append(gateway)
            run = run_loop(replay(gateway.url, upstream.url, workload))
    finally:
        for server in reversed(servers):
            server.stop()

    figures = analyse(workload, run, args)
    results = {
        "benchmark": "cache_replay",
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "load_avg_1m": {"before": load_before, "after": round(os.getloadavg()[0], 2)},
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(time.perf_counter() - began, 1),
        "setup": {
            "data": str(args.data),
            "requests": args.requests,
            "repeat_share": args.repeat_share,
            "hard_negatives": args.hard,
            "hard_negative_min_similarity": HARD_MIN_SIMILARITY,
            "threshold": DEFAULT_THRESHOLD,
            "upstream_latency_ms": args.latency_ms,
            "completion_tokens": args.completion_tokens,
            "prices_usd_per_mtok": {"input": PRICE_IN, "output": PRICE_OUT},
            "backend": "memory",
            "concurrency": 1,
            "paraphrase_pool": workload.paraphrase_pool,
            "hard_negative_pool": workload.hard_pool,
            "seed": args.seed,
        },
        **figures,
    }
    print_report(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


def set_default_behavior(upstream: str, behavior: dict[str, Any]) -> None:
    import urllib.request

    request = urllib.request.Request(
        upstream + "/__control/default",
        data=orjson.dumps(behavior),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        if resp.status != 200:
            raise RuntimeError(f"fake upstream refused {behavior}: {resp.status}")


def print_report(r: dict[str, Any]) -> None:
    s = r["setup"]
    print(
        f"\n{r['requests']:,} requests ({r['workload']}), fake upstream {s['upstream_latency_ms']}"
        f" ms, threshold {s['threshold']}, memory backend, one request at a time"
    )
    calls, cost = r["upstream_calls"], r["cost_usd"]
    print(
        f"upstream calls: {calls['with_cache']:,} with the cache, {calls['without_cache']:,}"
        f" without: {calls['saved']:,} saved ({calls['saved_share']:.1%})"
    )
    print(
        f"cost: {cost['with_cache']:.6f} USD with the cache, {cost['without_cache']:.6f}"
        f" without: {cost['saved']:.6f} saved ({(cost['saved_share'] or 0):.1%})"
    )
    print(f"hits: {r['hits']}")
    print("by workload kind:")
    for kind, counts in r["status_by_workload_kind"].items():
        print(f"  {kind:14s} {counts}")
    print(
        f"hit rate on repeats {r['repeat_hit_rate']:.1%} (cosmetic {r['cosmetic_hit_rate']:.1%},"
        f" paraphrase {r['paraphrase_hit_rate']:.1%};"
        f" {r['paraphrases_at_or_above_threshold']} paraphrases had cosine >= {s['threshold']},"
        f" median {(r['paraphrase_similarity'] or {}).get('p50')})"
    )
    print(
        f"false hits: {r['false_hits']} (hard non-duplicates: {r['workload'].get('hard_negative')},"
        f" {r['hard_negatives_at_or_above_threshold']} at cosine >= {s['threshold']});"
        f" guard rejections {r['guard_rejections']}"
    )
    for example in r["false_hit_examples"][:5]:
        print(
            f"  [{example['kind']}, {example['status']} {example['similarity']}]"
            f" {example['asked']!r} answered for {example['answered_for']!r}"
        )
    lat = r["latency_ms"]
    print("latency, client side (ms):  p50      p99     n")
    for name in ("hit", "exact_hit", "semantic_hit", "miss"):
        v = lat[name]
        if v.get("n"):
            print(f"  {name:14s} {v['p50_ms']:>9} {v['p99_ms']:>8} {v['n']:>5}")
    load = r["load_avg_1m"]
    print(f"wall {r['wall_s']} s; load average {load['before']} -> {load['after']}")


if __name__ == "__main__":
    main()
