"""eval_command: what ``groundgate eval`` does given an answerer, and its exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from groundgate.evals.dataset import EvalCase
from groundgate.evals.report import load_report
from groundgate.evals.runner import AnswerResult, eval_command

CASES = [
    {"id": "paris", "question": "Capital of France?", "answers": ["Paris"], "relevant_ids": ["fr"]},
    {"id": "port", "question": "Default port?", "answers": ["8080"], "must_contain": ["8080"]},
    {"id": "moon", "question": "Who lives on the moon?", "answerable": False},
]
GOLD = {"paris": "Paris", "port": "8080"}


class Oracle:
    """Answers right, optionally wrong on some ids."""

    def __init__(self, wrong: set[str] | None = None) -> None:
        self.wrong = wrong or set()

    async def __call__(self, case: EvalCase) -> AnswerResult:
        if case.case_id == "moon":
            return AnswerResult("I cannot answer that.", abstained=True, latency_ms=1.0)
        text = "no idea" if case.case_id in self.wrong else GOLD[case.case_id]
        return AnswerResult(text, abstained=False, retrieved_ids=["fr"], latency_ms=2.0)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(json.dumps(c) for c in CASES) + "\n")
    return path


def console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, color_system=None), buffer


async def test_pass_writes_report_and_prints_metrics(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    con, buffer = console()
    code = await eval_command(
        dataset, Oracle(), app="bot", out=out, console=con, progress=False, k=5
    )
    assert code == 0
    report = load_report(out)
    assert report.app == "bot" and report.dataset == str(dataset) and report.cases == 3
    assert report.metrics["f1"] == 1.0 and report.metrics["abstention_accuracy"] == 1.0
    assert report.metrics["recall@5"] == 1.0 and report.k == 5
    text = buffer.getvalue()
    assert "f1" in text and "1.0000" in text and "report written" in text


def many_cases(tmp_path: Path, n: int = 30) -> Path:
    """A dataset big enough for a drop to be told from noise."""
    path = tmp_path / "many.jsonl"
    rows = [{"id": f"c{i}", "question": f"q{i}?", "answers": [f"a{i}"]} for i in range(n)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


class Numbered:
    """Answers case ``cI`` with ``aI``, wrong on the ids in ``wrong``."""

    def __init__(self, wrong: set[str] | None = None) -> None:
        self.wrong = wrong or set()

    async def __call__(self, case: EvalCase) -> AnswerResult:
        right = "a" + case.case_id[1:]
        return AnswerResult("no idea" if case.case_id in self.wrong else right, abstained=False)


async def test_regression_against_baseline_exits_1(tmp_path: Path) -> None:
    dataset = many_cases(tmp_path)
    baseline = tmp_path / "baseline.json"
    assert await eval_command(dataset, Numbered(), out=baseline, progress=False) == 0

    con, buffer = console()
    broken = Numbered(wrong={f"c{i}" for i in range(12)})
    code = await eval_command(dataset, broken, baseline=baseline, console=con, progress=False)
    assert code == 1
    text = buffer.getvalue()
    assert "FAIL" in text and "significant" in text and "passed->failed" in text

    # The same run passes when the allowed drop covers it (F1 falls by 0.4).
    code = await eval_command(
        dataset, broken, baseline=baseline, max_drop=0.5, console=console()[0], progress=False
    )
    assert code == 0


async def test_a_drop_within_noise_passes_the_gate(tmp_path: Path) -> None:
    dataset = many_cases(tmp_path)
    baseline = tmp_path / "baseline.json"
    await eval_command(dataset, Numbered(), out=baseline, progress=False)
    con, buffer = console()
    # One case of 30 regressed: a drop of 0.033 > max_drop, but not a significant one.
    code = await eval_command(
        dataset, Numbered(wrong={"c3"}), baseline=baseline, console=con, progress=False
    )
    assert code == 0
    assert "within noise" in buffer.getvalue() and "c3" in buffer.getvalue()


async def test_no_regression_against_baseline_exits_0(dataset: Path, tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    await eval_command(
        dataset, Oracle(wrong={"port"}), out=baseline, console=console()[0], progress=False
    )
    con, buffer = console()
    assert (
        await eval_command(dataset, Oracle(), baseline=baseline, console=con, progress=False) == 0
    )
    assert "PASS" in buffer.getvalue()


async def test_bad_dataset_exits_2_with_line_number(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "ok"}\n{"question": "x", "answerable": "no"}\n')
    called = Oracle()
    con, buffer = console()
    out = tmp_path / "never.json"
    assert await eval_command(path, called, out=out, console=con, progress=False) == 2
    assert f"{path}:2:" in buffer.getvalue()
    assert not out.exists()


async def test_bad_baseline_exits_2_before_running(dataset: Path, tmp_path: Path) -> None:
    bad = tmp_path / "baseline.json"
    bad.write_text("[]")

    class MustNotRun:
        async def __call__(self, case: EvalCase) -> AnswerResult:
            raise AssertionError("the run should not start")

    con, buffer = console()
    code = await eval_command(dataset, MustNotRun(), baseline=bad, console=con, progress=False)
    assert code == 2 and "not an evaluation report" in buffer.getvalue()
    missing = tmp_path / "missing.json"
    code = await eval_command(dataset, MustNotRun(), baseline=missing, console=con, progress=False)
    assert code == 2


@pytest.mark.parametrize(
    "options", [{"concurrency": 0}, {"k": 0}, {"max_drop": -0.1}, {"max_drop": float("nan")}]
)
async def test_bad_options_exit_2(dataset: Path, options: dict[str, float]) -> None:
    con, _ = console()
    assert await eval_command(dataset, Oracle(), console=con, progress=False, **options) == 2  # type: ignore[arg-type]


async def test_failed_cases_are_reported_but_do_not_fail_without_baseline(
    dataset: Path, tmp_path: Path
) -> None:
    class Flaky(Oracle):
        async def __call__(self, case: EvalCase) -> AnswerResult:
            if case.case_id == "port":
                raise ConnectionError("[refused]")
            return await super().__call__(case)

    con, buffer = console()
    assert await eval_command(dataset, Flaky(), console=con, progress=False) == 0
    assert "1 of 3 cases failed" in buffer.getvalue()
    assert "ConnectionError: [refused]" in buffer.getvalue()  # markup-like text shown as is
