"""Guard benchmarks with thresholds and weights exactly as shipped (no tuning on the input).

    python bench/guards.py --injection FILE [FILE...] [--json OUT]

``--injection``: JSONL ``text``, ``label`` (1 = injection); see ``guards_injection.py``.
Writes ``{"injection": {"precision", "recall", "f1", "fpr", "p50_ms", "p99_ms", ...}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from guards_injection import evaluate_injection


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--injection", type=Path, nargs="+", help="JSONL text/label files")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if args.injection:
        results["injection"] = evaluate_injection(args.injection)
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
