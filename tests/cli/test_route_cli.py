"""``groundgate route train`` on a small synthetic data folder, and ``bench/routing.py`` on
four prompts with hand-worked figures (real subprocesses, as a user runs them)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from groundgate.routing.dataset import STRONG_MODEL, WEAK_MODEL
from groundgate.routing.learned import load_router
from groundgate.routing.verifier import load_verifier

BENCH = Path(__file__).resolve().parents[2] / "bench" / "routing.py"
THINGS = ["apples", "pencils", "marbles", "stickers", "cookies", "books", "coins", "shells"]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("GROUNDGATE_CONFIG", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_data(folder: Path) -> int:
    """40 word problems with answers (the weak model right on the clean ones) and 24
    multiple-choice questions; returns the number of prompts."""
    gsm = []
    for i in range(40):
        thing = THINGS[i % len(THINGS)]
        a, b = 3 + i, 2 + i % 5
        right = i % 3 != 0
        weak = f"{a} + {b} = <<{a}+{b}={a + b}>>{a + b} {thing}.\n#### {a + b}"
        if not right:
            weak = f"However, assuming some are lost, about {a} - {b} = {a - b + 1}.5 {thing}"
        gsm.append(
            {
                "prompt": f"Sam has {a} {thing} and gets {b} more. How many {thing} now? (#{i})",
                WEAK_MODEL: str(right),
                STRONG_MODEL: str(i % 7 != 0),
                f"{WEAK_MODEL}_response": weak,
                f"{STRONG_MODEL}_response": f"Sam has {a} + {b} = {a + b} {thing}.",
            }
        )
    write_csv(folder / "gsm8k" / "gsm8k_responses.csv", gsm)
    mmlu = [
        {
            "prompt": f"Question {i} about {THINGS[i % 8]}?\nA. one\nB. two\nC. three\nD. four\n"
            "Answer:",
            WEAK_MODEL: str(i % 2 == 0),
            STRONG_MODEL: "True",
        }
        for i in range(24)
    ]
    write_csv(folder / "mmlu" / "responses" / "mmlu_toy.csv", mmlu)
    return len(gsm) + len(mmlu)


def test_route_train_writes_loadable_reproducible_files(tmp_path: Path) -> None:
    n = write_data(tmp_path / "data")
    args = ["-m", "groundgate", "route", "train", "--data", "data", "-q"]
    first = run([*args, "--out-router", "r1.json", "--out-verifier", "v1.json"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / ".bench-cache" / "routing").is_dir()  # embeddings kept for re-runs
    router, verifier = load_router(tmp_path / "r1.json"), load_verifier(tmp_path / "v1.json")
    assert router.embedder == "all-MiniLM-L6-v2-int8" and router.dimension == 384
    assert router.meta["rows"] == n and verifier.meta["rows"] == 40
    assert router.meta["train_rows"] + router.meta["holdout_rows"] == n
    assert 0 < router.meta["holdout_rows"] < n // 2
    assert f"router threshold {router.threshold:.4f}" in first.stdout
    assert f"verifier threshold {verifier.threshold:.4f}" in first.stdout
    # The clean answers were the right ones: the verifier learned that.
    assert verifier.meta["train_auc"] > 0.9
    # Same data, same bytes (the second run reads the embeddings from the cache).
    second = run([*args, "--out-router", "r2.json", "--out-verifier", "v2.json"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "r1.json").read_bytes() == (tmp_path / "r2.json").read_bytes()
    assert (tmp_path / "v1.json").read_bytes() == (tmp_path / "v2.json").read_bytes()


def test_route_train_refuses_a_folder_without_routing_data(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = run(
        ["-m", "groundgate", "route", "train", "--data", "empty", "-q", "--out-router", "r.json"],
        tmp_path,
    )
    assert proc.returncode == 2 and "gsm8k/gsm8k_responses.csv" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "r.json").exists()


def test_bench_costs_and_curves_on_four_prompts(tmp_path: Path) -> None:
    # 40 characters = 10 estimated tokens for every prompt and answer: a strong call costs
    # (10 * 10 + 10 * 30) / 1e6 = 400e-6 USD, a weak one (10 * 0.6 + 10 * 0.6) / 1e6 = 12e-6.
    flags = [("False", "True"), ("True", "True"), ("False", "False"), ("True", "True")]
    rows = [
        {
            "prompt": f"What is item {i} of the list, exactly?".ljust(40, "."),
            WEAK_MODEL: weak,
            STRONG_MODEL: strong,
            f"{WEAK_MODEL}_response": f"#### {i}".ljust(40),
            f"{STRONG_MODEL}_response": f"The answer is {i}".ljust(40),
        }
        for i, (weak, strong) in enumerate(flags)
    ]
    write_csv(tmp_path / "data" / "gsm8k" / "gsm8k_responses.csv", rows)
    proc = run([str(BENCH), "--data", "data", "--json", "out.json", "--no-cache"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["strong_accuracy"] == 0.75 and result["weak_accuracy"] == 0.5
    routers = result["routers"]
    assert set(routers) == {"random", "oracle", "rules", "learned", "cascade"}
    assert result["datasets"]["gsm8k"]["routers"] == routers  # one dataset: the same block
    # Oracle: only the first prompt goes strong: (400 + 3 * 12) / 1600.
    assert routers["oracle"]["at_95"] == {
        "strong_share": 0.25,
        "cost_ratio": 0.2725,
        "accuracy": 0.75,
    }
    # Random: (0.95 * 0.75 - 0.5) / 0.25 = 0.85 strong; (0.15 * 48 + 0.85 * 1600) / 1600.
    assert routers["random"]["at_95"] == {
        "strong_share": 0.85,
        "cost_ratio": 0.8545,
        "accuracy": 0.7125,
    }
    # Equal lengths: the rules router's one threshold sends all or nothing.
    assert routers["rules"]["curve"] == [[0.0, 0.03, 0.5], [1.0, 1.0, 0.75]]
    # The cascade always pays the four weak calls: 48 / 1600 at its start, 1648 / 1600 at its end.
    cascade = routers["cascade"]["curve"]
    assert cascade[0] == [0.0, 0.03, 0.5] and cascade[-1] == [1.0, 1.03, 0.75]
    for block in routers.values():
        for share, cost, accuracy in block["curve"]:
            assert 0 <= share <= 1 and cost > 0 and 0.5 <= accuracy <= 0.75
    assert "gsm8k" in proc.stdout


@pytest.mark.parametrize("split", ["held-out"])
def test_bench_held_out_split_reads_only_the_trainers_held_out_prompts(
    tmp_path: Path, split: str
) -> None:
    write_data(tmp_path / "data")
    proc = run(
        [
            str(BENCH),
            "--data",
            "data",
            "--json",
            "out.json",
            "--split",
            split,
            "--no-cache",
            "--plot",
            "curves.png",
        ],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    from groundgate.routing.dataset import is_held_out, read_all

    held = {
        name: sum(is_held_out(r.prompt, 0.2, 0) for r in rows)
        for name, rows in read_all(tmp_path / "data").items()
    }
    assert result["meta"]["rows"] == {k: v for k, v in held.items() if v}
    assert "cascade" not in result["routers"]  # pooled with MMLU, which has no answers
    assert "cascade" in result["datasets"]["gsm8k"]["routers"]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
