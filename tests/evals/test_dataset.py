"""Dataset validation: good lines load with defaults; every bad line is reported by number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundgate.evals.dataset import DatasetError, EvalCase, load_dataset, parse_dataset


def jsonl(*rows: object) -> list[str]:
    return [row if isinstance(row, str) else json.dumps(row) for row in rows]


def test_valid_cases_with_defaults_and_ids_from_line_numbers() -> None:
    lines = jsonl(
        {"id": "q1", "question": "Where?", "answers": ["Paris"], "relevant_ids": ["d1"]},
        "",
        {
            "question": "  Why?  ",
            "history": [{"role": "user", "content": "hi"}],
            "answerable": False,
            "must_not_contain": ["secret"],
            "filters": {"lang": "en"},
        },
    )
    cases = parse_dataset(lines)
    assert [c.case_id for c in cases] == ["q1", "line-3"]  # the blank line still counts
    first, second = cases
    assert first.answerable is True and first.history == [] and first.must_contain == []
    assert second.question == "Why?"
    assert second.history[0].role == "user" and second.filters == {"lang": "en"}
    assert not second.answerable and second.has_rules and not first.has_rules


def problems_of(lines: list[str]) -> list[tuple[int | None, str]]:
    with pytest.raises(DatasetError) as info:
        parse_dataset(lines, "cases.jsonl")
    return info.value.problems


def test_bad_json_is_reported_with_its_line() -> None:
    problems = problems_of(jsonl({"question": "ok"}, {"question": "ok 2"}, '{"question": '))
    assert len(problems) == 1
    assert problems[0][0] == 3 and "not valid JSON" in problems[0][1]


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"answers": ["x"]}, "question"),
        ({"question": ""}, "question"),
        ({"question": "q", "must_contains": ["x"]}, "must_contains: unknown field"),
        ({"question": "q", "answerable": "yes"}, "answerable"),
        ({"question": "q", "answers": "Paris"}, "answers"),
        ({"question": "q", "answers": [""]}, "answers.0"),
        ({"question": "q", "id": 7}, "id"),
        ({"question": "q", "history": [{"role": "robot", "content": "x"}]}, "history.0.role"),
        ({"question": "q", "answerable": False, "answers": ["x"]}, "unanswerable"),
        ([1, 2], "JSON object"),
    ],
)
def test_each_kind_of_bad_case_is_reported(row: object, fragment: str) -> None:
    problems = problems_of(jsonl({"question": "fine"}, row))
    assert problems and all(line == 2 for line, _ in problems)
    assert any(fragment in message for _, message in problems), problems


def test_all_bad_lines_are_reported_at_once_and_nothing_is_skipped() -> None:
    lines = jsonl(
        {"id": "a", "question": "one"},
        "not json",
        {"id": "b", "question": "two"},
        {"id": "a", "question": "again"},
        {"question": 3},
    )
    with pytest.raises(DatasetError) as info:
        parse_dataset(lines, "cases.jsonl")
    assert [line for line, _ in info.value.problems] == [2, 4, 5]
    text = str(info.value)
    assert "cases.jsonl:2:" in text and "cases.jsonl:5:" in text
    assert "duplicate id 'a' (first on line 1)" in text
    assert "3 problems" in text


def test_generated_id_collision_is_a_duplicate() -> None:
    problems = problems_of(jsonl({"question": "q"}, {"id": "line-1", "question": "q"}))
    assert problems == [(2, "duplicate id 'line-1' (first on line 1)")]


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n")
    with pytest.raises(DatasetError, match="no cases"):
        load_dataset(path)


def test_missing_file_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="cannot read"):
        load_dataset(tmp_path / "nope.jsonl")


def test_load_dataset_tolerates_bom_and_crlf_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    # U+2028 inside a JSON string must not be taken for a line break.
    rows = ['{"question": "first\u2028line"}', '{"question": "second"}', '{"oops": 1}']
    path.write_bytes(("\ufeff" + "\r\n".join(rows)).encode("utf-8"))
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert [line for line, _ in info.value.problems] == [3, 3]  # missing question + unknown key
    path.write_bytes(("\ufeff" + "\r\n".join(rows[:2]) + "\r\n").encode("utf-8"))
    cases = load_dataset(path)
    assert [c.question for c in cases] == ["first\u2028line", "second"]
    assert isinstance(cases[0], EvalCase)
