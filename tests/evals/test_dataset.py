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


# -- the fields of the new scorers, and CSV files --------------------------------------------


def test_new_case_fields_load_and_bad_ones_are_reported_by_line() -> None:
    [good] = parse_dataset(
        jsonl(
            {
                "question": "q",
                "schema": {"type": "object"},
                "pattern": "(?i)^yes",
                "reference_context": ["It is so."],
                "rubric": "Says yes politely.",
            }
        )
    )
    assert good.answer_schema == {"type": "object"} and good.pattern == "(?i)^yes"
    assert good.reference_context == ["It is so."] and good.rubric == "Says yes politely."
    problems = problems_of(
        jsonl(
            {"question": "ok"},
            {"question": "q", "schema": {"type": "nope"}},
            {"question": "q", "pattern": "(unclosed"},
            {"question": "q", "schema": "not a schema"},
        )
    )
    assert sorted({line for line, _ in problems}) == [2, 3, 4]
    assert "schema" in problems[0][1] and "not a regular expression" in problems[1][1]


CSV = (
    "id,question,answers,relevant_ids,answerable,filters,pattern\n"
    'vac,How many vacation days?,28 days | twenty-eight days,"[""hr.md""]",true,,\n'
    '"multi","A question\non two lines?",,,false,"{""lang"": ""en""}",\n'
    ",No id?,Paris,,,,(?i)paris\n"
)


def test_csv_cases_with_both_list_forms_and_json_cells(tmp_path: Path) -> None:
    path = tmp_path / "cases.CSV"  # the extension is read case-insensitively
    path.write_bytes(("\ufeff" + CSV).encode())
    vac, multi, no_id = load_dataset(path)
    assert vac.answers == ["28 days", "twenty-eight days"] and vac.relevant_ids == ["hr.md"]
    assert multi.question == "A question\non two lines?" and not multi.answerable
    assert multi.filters == {"lang": "en"} and multi.answers == []
    # The row starts on line 5 (the header is line 1, the quoted row spans lines 3-4).
    assert no_id.case_id == "line-5" and no_id.pattern == "(?i)paris"


def test_csv_problems_are_reported_by_the_line_the_row_starts_on(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "question,answers,answerable,score,schema\n"
        "fine,a,,,\n"
        '"two\nlines",,maybe,,\n'  # line 3
        "x,,true,high,\n"  # line 5
        "y,a | ,true,,\n"  # line 6: an empty list value
        "z,,false,,{bad\n"  # line 7
        "short\n"  # line 8
        "dup,b,false,,\n"  # line 9: an unanswerable case with answers
    )
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    lines = [line for line, _ in info.value.problems]
    assert lines == [3, 5, 6, 7, 8, 9], info.value.problems
    text = str(info.value)
    assert f"{path}:3: answerable: expected true or false" in text
    assert f"{path}:5: score: not a number" in text and f"{path}:7: schema: not valid JSON" in text
    assert f"{path}:8: 1 cells, the header has 5" in text


def test_csv_header_problems(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("question,answer,questions,question\nq,a,b,c\n")
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    assert info.value.problems == [
        (1, "questions: unknown column"),
        (1, "question: column given twice"),
    ]
    path.write_text("")
    with pytest.raises(DatasetError, match="no cases"):
        load_dataset(path)
