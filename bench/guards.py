"""Guard quality and speed on labelled files, with thresholds exactly as shipped.

    python bench/guards.py --pii ../shared/data/pii/dev.jsonl [--json OUT]
    python bench/guards.py --injection FILE [FILE...] [--json OUT]
    python bench/guards.py --grounding ../shared/data/grounding/dev.jsonl [--json OUT]

``--pii FILE``: JSONL rows with ``text`` and ``spans`` [{start, end, type}] (end exclusive,
code points). ``guards.detect.find_sensitive`` (PII and secrets) runs on each text.
Matching is span-level and typed: a gold span counts as found when a predicted span of the
same type overlaps it (boundaries may differ: "+41 (0)96 471 07 95" found as
"(0)96 471 07 95" counts); a predicted span is correct when it overlaps a gold span of its
type. Gold spans of other types (PERSON, ADDRESS, OTHER) are not scored, but a structured
prediction over them is a false positive. Latency is per text, both detectors together.
Figures are given for the whole file and for each ``source`` in it.

``--injection FILE [FILE...]``: JSONL ``text``, ``label`` (1 = injection), scored by the
shipped classifier (``guards_injection.py``): precision, recall, F1, FPR and latency (the
question embedding included), overall and per file.

``--grounding FILE``: JSONL ``context``, ``question``, ``answer``, ``label`` (1 = supported),
scored by the shipped groundedness scorer (``guards_grounding.py``): AUC (positive class =
supported), and precision, recall, F1 and balanced accuracy at the shipped threshold, overall
and per ``source``.

``--input-guards FILE``: every input guard together on ~500-token prompts built from the
texts of a JSONL file (``guards_input.py``), through the real ``guard_in`` stage with the
semantic cache's lookup after it: p50/p99 of the guards and how many embeddings a request made.

Other guards add their own flag and a function that returns their section of the report.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from groundgate.guards.detect import find_sensitive
from groundgate.guards.pii import PII_TYPES
from groundgate.guards.secrets import SECRET
from groundgate.guards.spans import Span

STRUCTURED = (*PII_TYPES, SECRET)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _ratio(num: int, den: int) -> float:
    return round(num / den, 4) if den else 0.0


def score_spans(rows: list[dict[str, Any]], predictions: list[list[Span]]) -> dict[str, Any]:
    """Typed, overlap-based precision and recall, overall and per structured type."""
    found: dict[str, int] = defaultdict(int)  # gold spans found, by type
    support: dict[str, int] = defaultdict(int)
    correct: dict[str, int] = defaultdict(int)  # predicted spans that hit, by type
    predicted: dict[str, int] = defaultdict(int)
    for row, spans in zip(rows, predictions, strict=True):
        gold = [Span(g["start"], g["end"], g["type"]) for g in row["spans"]]
        for g in gold:
            if g.type in STRUCTURED:
                support[g.type] += 1
                found[g.type] += any(p.type == g.type and p.overlaps(g) for p in spans)
        for p in spans:
            predicted[p.type] += 1
            correct[p.type] += any(g.type == p.type and g.overlaps(p) for g in gold)
    by_type = {
        name: {
            "precision": _ratio(correct[name], predicted[name]),
            "recall": _ratio(found[name], support[name]),
            "support": support[name],
            "predicted": predicted[name],
        }
        for name in STRUCTURED
    }
    return {
        "precision": _ratio(sum(correct.values()), sum(predicted.values())),
        "recall": _ratio(sum(found.values()), sum(support.values())),
        "by_type": by_type,
    }


def bench_pii(path: Path) -> dict[str, Any]:
    rows = read_jsonl(path)
    predictions, latencies = [], []
    for row in rows:
        started = time.perf_counter()
        predictions.append(find_sensitive(row["text"]))
        latencies.append((time.perf_counter() - started) * 1000)
    report = score_spans(rows, predictions)
    report["p50_ms"] = round(statistics.median(latencies), 3)
    report["p99_ms"] = round(percentile(latencies, 0.99), 3)
    report["rows"] = len(rows)
    sources = sorted({row.get("source", "") for row in rows})
    if len(sources) > 1:
        report["by_source"] = {
            source: score_spans(
                [r for r in rows if r.get("source", "") == source],
                [p for r, p in zip(rows, predictions, strict=True) if r.get("source") == source],
            )
            for source in sources
        }
    return report


# Each section: (flag, help, what it returns for the file(s) it is given).
def bench_injection(paths: list[Path]) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from guards_injection import evaluate_injection

    return evaluate_injection(paths)


def bench_grounding(paths: list[Path]) -> dict[str, Any]:
    if len(paths) != 1:
        raise SystemExit("--grounding takes one file")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from guards_grounding import evaluate_grounding

    return evaluate_grounding(paths[0])


def bench_pii_files(paths: list[Path]) -> dict[str, Any]:
    if len(paths) != 1:
        raise SystemExit("--pii takes one file")
    return bench_pii(paths[0])


def bench_input_guards(paths: list[Path]) -> dict[str, Any]:
    if len(paths) != 1:
        raise SystemExit("--input-guards takes one file")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from guards_input import evaluate_input_guards

    return evaluate_input_guards(paths[0])


# flag -> (help, function over the files given)
SECTIONS: dict[str, tuple[str, Callable[[list[Path]], dict[str, Any]]]] = {
    "pii": ("JSONL with text and spans [{start, end, type}]", bench_pii_files),
    "injection": ("JSONL with text and label (1 = injection); several files", bench_injection),
    "grounding": ("JSONL with context, question, answer, label (1 = supported)", bench_grounding),
    "input_guards": ("JSONL with text: prose for ~500-token prompts", bench_input_guards),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, (help_text, _) in SECTIONS.items():
        flag = "--" + name.replace("_", "-")
        parser.add_argument(flag, dest=name, type=Path, nargs="+", metavar="FILE", help=help_text)
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the report here")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    for name, (_, run) in SECTIONS.items():
        path = getattr(args, name)
        if path is not None:
            report[name] = run(path)
    if not report:
        parser.error("give at least one of " + ", ".join(f"--{n}" for n in SECTIONS))
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
