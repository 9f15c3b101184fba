"""The routing data the router and verifier are trained on and the benchmark reads: per prompt,
whether a weak and a strong model answered it correctly (and, for GSM8K, their answers).

Layout of a data folder (RouteLLM's evaluation files, as in ``../shared/data/routing``):

- ``gsm8k/gsm8k_responses.csv``: ``prompt``, one True/False column per model, and
  ``<model>_response`` columns with each model's answer;
- ``mmlu/responses/*.csv``: ``prompt`` and one True/False column per model (no answers);
- ``mmlu/contaminated_prompts.jsonl`` (optional): MMLU questions RouteLLM found in its
  routers' training data (``eval_prompt``); they are dropped, as RouteLLM drops them.

The held-out part is chosen by a hash of the prompt (``is_held_out``), so the trainer and the
benchmark agree on it without a split file, a prompt seen twice is always on one side, and
adding rows never moves an old row across.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG_MODEL = "gpt-4-1106-preview"
GSM8K_FILE = Path("gsm8k") / "gsm8k_responses.csv"
MMLU_DIR = Path("mmlu") / "responses"
CONTAMINATED_FILE = Path("mmlu") / "contaminated_prompts.jsonl"
DATASETS = ("gsm8k", "mmlu")


@dataclass(frozen=True, slots=True)
class Row:
    dataset: str  # gsm8k | mmlu
    prompt: str
    weak_correct: bool
    strong_correct: bool
    weak_response: str | None = None  # None where the file has no answers (MMLU)
    strong_response: str | None = None


def is_held_out(prompt: str, share: float, seed: int) -> bool:
    """Whether ``prompt`` is in the held-out part: the first 8 bytes of sha256(seed, prompt)
    read as a fraction of 2**64, below ``share``."""
    digest = hashlib.sha256(f"{seed}\x00{prompt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def _flag(value: str, path: Path, column: str) -> bool:
    if value not in ("True", "False"):
        raise ValueError(f"{path}: column {column!r} holds {value!r}, not True/False")
    return value == "True"


def _read_csv(path: Path, dataset: str, with_responses: bool) -> list[Row]:
    csv.field_size_limit(sys.maxsize)  # a few prompts and answers are long
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"prompt", WEAK_MODEL, STRONG_MODEL} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: no column {', '.join(sorted(missing))}")
        rows = []
        for item in reader:
            rows.append(
                Row(
                    dataset,
                    item["prompt"],
                    _flag(item[WEAK_MODEL], path, WEAK_MODEL),
                    _flag(item[STRONG_MODEL], path, STRONG_MODEL),
                    item.get(f"{WEAK_MODEL}_response") if with_responses else None,
                    item.get(f"{STRONG_MODEL}_response") if with_responses else None,
                )
            )
    return rows


def contaminated_prompts(folder: Path) -> set[str]:
    path = folder / CONTAMINATED_FILE
    if not path.is_file():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {str(json.loads(line)["eval_prompt"]) for line in lines if line.strip()}


def read_dataset(folder: Path, dataset: str) -> list[Row]:
    """The rows of one dataset in ``folder`` (empty when its files are absent), in file order
    (MMLU: subject files by name), contaminated MMLU prompts dropped."""
    if dataset == "gsm8k":
        path = folder / GSM8K_FILE
        return _read_csv(path, "gsm8k", with_responses=True) if path.is_file() else []
    if dataset == "mmlu":
        drop = contaminated_prompts(folder)
        rows: list[Row] = []
        for path in sorted((folder / MMLU_DIR).glob("*.csv")):
            rows += [r for r in _read_csv(path, "mmlu", False) if r.prompt not in drop]
        return rows
    raise ValueError(f"no dataset {dataset!r} (known: {', '.join(DATASETS)})")


def read_all(folder: Path) -> dict[str, list[Row]]:
    """Every dataset present in ``folder``, by name (those with no rows left out)."""
    found = {name: read_dataset(folder, name) for name in DATASETS}
    return {name: rows for name, rows in found.items() if rows}
