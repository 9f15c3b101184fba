"""Retrieval quality and speed on any BEIR-format folder.

    python bench/retrieval.py --beir ../shared/data/scifact --split train [--json OUT]

Ingests ``corpus.jsonl`` into a knowledge base (the work folder keeps the store and its
embedding cache, so a second run does not embed again; ``--fresh`` starts over), then runs
every query of ``qrels/SPLIT.tsv`` in each retrieval mode and reports nDCG@10 and recall@100
at document level (a document scores as its best chunk), with per-query latency.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from rich.progress import Progress

from groundgate.config import KnowledgeBaseConfig, Settings, load_settings
from groundgate.container import Container
from groundgate.evals.scorers import ndcg_at_k, recall_at_k
from groundgate.retrieval.embedding import content_hash
from groundgate.retrieval.loaders import load_path

ROOT = Path(__file__).resolve().parent.parent
TENANT, KB = "bench", "beir"
# Each mode: (label, KnowledgeBaseConfig overrides).
MODES: dict[str, dict[str, Any]] = {
    "bm25": {"mode": "keyword"},
    "vectorless": {"mode": "vectorless"},
    "dense": {"mode": "dense"},
    "hybrid_rrf": {"mode": "hybrid", "fusion": "rrf", "rrf_k": 60},
    "hybrid_weighted": {"mode": "hybrid", "fusion": "weighted", "dense_weight": 0.5},
    "hybrid_rrf+sentence": {"mode": "hybrid", "fusion": "rrf", "rerank": "sentence"},
}


def mode_overrides(name: str) -> dict[str, Any]:
    """A named mode, or ``hybrid_weighted@W`` for weighted fusion with dense weight W."""
    if name in MODES:
        return MODES[name]
    base, _, weight = name.partition("@")
    if base == "hybrid_weighted" and weight:
        return {"mode": "hybrid", "fusion": "weighted", "dense_weight": float(weight)}
    raise SystemExit(f"unknown mode {name!r}: choose from {', '.join(MODES)} or hybrid_weighted@W")


def load_beir(folder: Path, split: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    queries = {}
    with (folder / "queries.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    qrels: dict[str, set[str]] = {}
    with (folder / "qrels" / f"{split}.tsv").open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(str(row["query-id"]), set()).add(str(row["corpus-id"]))
    return {q: queries[q] for q in qrels if q in queries}, qrels


def doc_ranking(chunk_doc_ids: list[str]) -> list[str]:
    return list(dict.fromkeys(chunk_doc_ids))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir: Path = args.workdir
    base = load_settings(None)
    settings = Settings(
        **{**base.model_dump(), "store": {"type": "sqlite", "path": str(workdir / "bench.db")}}
    )
    runtime = Container(settings)
    await runtime.start()
    try:
        docs, failures = load_path(args.beir / "corpus.jsonl")
        if args.max_docs:
            docs = docs[: args.max_docs]
        print(f"corpus: {len(docs)} documents ({len(failures)} unreadable)", file=sys.stderr)
        ingestor = runtime.ingestor(KB)
        started = time.perf_counter()
        embedded = 0
        with Progress(transient=True) as bar:
            task = bar.add_task("ingest", total=len(docs))

            def tick(result: Any) -> None:
                nonlocal embedded
                embedded += result.status in ("added", "updated")
                bar.advance(task)

            await ingestor.ingest(TENANT, KB, docs, progress=tick)
        ingest_s = time.perf_counter() - started
        queries, qrels = load_beir(args.beir, args.split)
        if args.max_queries:
            queries = dict(list(queries.items())[: args.max_queries])
        modes = {}
        for name in args.modes:
            config = KnowledgeBaseConfig(
                **{**settings.retrieval.model_dump(), **mode_overrides(name)}
            )
            # Every mode starts with cold query embeddings, as a live query would.
            await forget_query_vectors(runtime, list(queries.values()))
            modes[name] = await evaluate(runtime, config, queries, qrels, args.top_k)
            m = modes[name]
            print(
                f"{name:>22}: nDCG@10 {m['ndcg@10']:.4f}  recall@100 {m['recall@100']:.4f}"
                f"  p50 {m['p50_ms']:.1f} ms  p95 {m['p95_ms']:.1f} ms",
                file=sys.stderr,
            )
        return {
            "dataset": str(args.beir),
            "split": args.split,
            "documents": len(docs),
            "queries": len(queries),
            "ingest_docs_per_s": round(len(docs) / ingest_s, 2),
            "ingest_newly_indexed": embedded,
            "ingest_s": round(ingest_s, 2),
            "modes": modes,
        }
    finally:
        await runtime.stop()


async def forget_query_vectors(runtime: Container, texts: list[str]) -> None:
    hashes = [content_hash(t) for t in texts]
    db = runtime.store.db  # type: ignore[attr-defined]  # the bench runs on SQLite

    def _forget(conn: Any) -> None:
        conn.executemany(
            "DELETE FROM embedding_cache WHERE content_hash = ?", [(h,) for h in hashes]
        )

    await db.write(_forget)


async def evaluate(
    runtime: Container,
    config: KnowledgeBaseConfig,
    queries: dict[str, str],
    qrels: dict[str, set[str]],
    top_k: int,
) -> dict[str, float]:
    ndcgs, recalls, latencies = [], [], []
    with Progress(transient=True) as bar:
        task = bar.add_task(f"{config.mode}/{config.fusion}/{config.rerank}", total=len(queries))
        for qid, text in queries.items():
            started = time.perf_counter()
            result = await runtime.retriever.search(TENANT, KB, text, config=config, top_k=top_k)
            latencies.append((time.perf_counter() - started) * 1000)
            ranking = doc_ranking([p.chunk.doc_id for p in result.passages])
            ndcgs.append(ndcg_at_k(ranking, qrels[qid], 10))
            recalls.append(recall_at_k(ranking, qrels[qid], 100))
            bar.advance(task)
    latencies.sort()
    return {
        "ndcg@10": round(statistics.fmean(ndcgs), 4),
        "recall@100": round(statistics.fmean(recalls), 4),
        "p50_ms": round(latencies[len(latencies) // 2], 2),
        "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beir", type=Path, default=ROOT.parent / "shared/data/scifact")
    parser.add_argument("--split", default="train")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=list(MODES),
        help=f"any of {', '.join(MODES)}, or hybrid_weighted@W",
    )
    parser.add_argument("--top-k", type=int, default=150, help="chunks retrieved per query")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench-cache" / "beir")
    parser.add_argument("--fresh", action="store_true", help="drop the work folder first")
    parser.add_argument("--max-docs", type=int, default=0)
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.fresh and args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = asyncio.run(run(args))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
