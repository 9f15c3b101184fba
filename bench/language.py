"""Language identification for the ``limits`` guard: accuracy, refusals at the shipped
confidence, load cost and latency (``guards/language.py``).

    python bench/language.py [--fixture tests/guards/data/languages.jsonl]
        [--english ../shared/data] [--json bench/results/guards-language.json]

``--fixture``: JSONL ``text``, ``lang`` (ISO 639-1, or ``und`` for text with no language:
a word or two, code, numbers, URLs). Written for the tests: 20 ordinary requests in each of
ten languages and 30 undetermined strings. Reported: top-1 accuracy; for every sentence and
every single allowed language among the ten, whether the guard refuses it (it should exactly
when the languages differ); whether any undetermined string is refused under any of them.

``--english DIR``: real English questions nobody tuned on (the first 3,000 ``text_a`` of
``qqp/dev.jsonl`` and the SciFact claims in ``scifact/queries.jsonl``) in an English-only app:
how many are refused; and deepset's prompts (``prompt_injections/train.jsonl``, English and
German) in an app allowing ``en`` and ``de``.

Latency: ``detect_language`` on texts of 20, 100 and 500 tokens (English prose, ~4.4 characters
a token), after the model is loaded; p50 / p99 over many calls. Also the first load's time and
the resident memory it adds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from groundgate.config_guards import LimitsGuard
from groundgate.guards import language

PROSE = (
    "The committee met on Tuesday to review the quarterly figures, and most members agreed "
    "that the new pricing had lifted revenue without hurting retention in the smaller markets. "
)
CHARS_PER_TOKEN = 4.4


def read_jsonl(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
                if limit is not None and len(rows) >= limit:
                    break
    return rows


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def load_cost() -> dict[str, float]:
    before = rss_mb()
    language.warm()
    return {
        "load_ms": round(language.load_ms or 0.0, 1),
        "rss_added_mb": round(rss_mb() - before, 1),
    }


def latency(tokens: int, calls: int) -> dict[str, float]:
    text = (PROSE * (tokens // 20 + 2))[: round(tokens * CHARS_PER_TOKEN)]
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        language.detect_language(text)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "chars": len(text),
        "p50_ms": round(statistics.median(times), 4),
        "p99_ms": round(times[int(0.99 * (len(times) - 1))], 4),
    }


def fixture_report(rows: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
    langs = sorted({r["lang"] for r in rows} - {"und"})
    detected = [(r, language.detect_language(r["text"])) for r in rows]
    scored = [(r, d) for r, d in detected if r["lang"] != "und"]
    correct = sum(d[0] == r["lang"] for r, d in scored)
    by_lang = {
        lang: round(statistics.mean(d[0] == r["lang"] for r, d in scored if r["lang"] == lang), 3)
        for lang in langs
    }
    refused_foreign = missed_foreign = refused_own = refused_und = 0
    for r, (code, confidence) in detected:
        for allowed in langs:
            refused = code not in (allowed, language.UNDETERMINED) and confidence >= threshold
            if r["lang"] == "und":
                refused_und += refused
            elif r["lang"] == allowed:
                refused_own += refused
            elif refused:
                refused_foreign += 1
            else:
                missed_foreign += 1
    und = [d for r, d in detected if r["lang"] == "und"]
    return {
        "sentences": len(scored),
        "languages": langs,
        "top1_accuracy": round(correct / len(scored), 4),
        "top1_accuracy_by_language": by_lang,
        "wrong": [
            {"text": r["text"], "lang": r["lang"], "detected": d[0], "confidence": round(d[1], 3)}
            for r, d in scored
            if d[0] != r["lang"]
        ],
        "foreign_refused": round(refused_foreign / (refused_foreign + missed_foreign), 4),
        "own_language_refused": refused_own,
        "undetermined_strings": len(und),
        "undetermined_refused": refused_und,
        "undetermined_max_confidence": round(max(c for _, c in und), 3),
    }


def real_text_report(data: Path, threshold: float) -> dict[str, Any]:
    english = [row["text_a"] for row in read_jsonl(data / "qqp" / "dev.jsonl", 3000)]
    english += [row["text"] for row in read_jsonl(data / "scifact" / "queries.jsonl")]
    refused = [text for text in english if language.check_language(text, ["en"], threshold).refused]
    prompts = [row["text"] for row in read_jsonl(data / "prompt_injections" / "train.jsonl")]
    prompts_refused = [
        text for text in prompts if language.check_language(text, ["en", "de"], threshold).refused
    ]
    return {
        "english_questions": len(english),
        "english_refused_in_en_app": len(refused),
        "english_refused_examples": refused[:10],
        "deepset_prompts": len(prompts),
        "deepset_refused_in_en_de_app": len(prompts_refused),
        "deepset_refused_examples": prompts_refused[:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", type=Path, default=Path("tests/guards/data/languages.jsonl"))
    parser.add_argument("--english", type=Path, help="the shared data folder (../shared/data)")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    threshold = LimitsGuard().language_confidence
    report: dict[str, Any] = {"threshold": threshold, "model": "py3langid 0.4.0"}
    report["load"] = load_cost()
    report["latency"] = {str(n): latency(n, args.calls) for n in (20, 100, 500)}
    report["fixture"] = fixture_report(read_jsonl(args.fixture), threshold)
    if args.english is not None:
        report["real_text"] = real_text_report(args.english, threshold)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", "utf-8")


if __name__ == "__main__":
    main()
