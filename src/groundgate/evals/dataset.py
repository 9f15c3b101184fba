"""Evaluation datasets: JSONL (one case per line) or CSV (one case per row), validated strictly.

A JSONL line is a JSON object::

    {"id"?: str, "question": str, "history"?: [{"role", "content"}, ...],
     "answers"?: [str, ...], "must_contain"?: [str, ...], "must_not_contain"?: [str, ...],
     "relevant_ids"?: [str, ...], "answerable"?: bool, "filters"?: {...}, "label"?: str,
     "schema"?: {...}, "pattern"?: str, "reference_context"?: [str, ...], "rubric"?: str,
     "answer"?: str, "context"?: [str, ...], "labels"?: [str, ...], "score"?: float}

- ``answers``: acceptable answers; any one of them is right (exact match and F1 take the best).
- ``must_contain`` / ``must_not_contain``: case-insensitive substrings the answer must / must
  not contain.
- ``relevant_ids``: ids of the documents that hold the answer (retrieval metrics).
- ``answerable`` (default true): false when the right behaviour is to abstain.
- ``filters``: metadata filters passed through to retrieval.
- ``schema``: a JSON Schema the answer, read as JSON, must satisfy (checked when loaded).
- ``pattern``: a regular expression (ECMAScript syntax, bounded cost: ``answer_rules.py``) the
  answer must match somewhere; anchor it with ``^``/``$`` for the whole answer.
- ``reference_context``: passages that hold the answer (context recall and precision without
  ``relevant_ids``).
- ``rubric``: what an LLM judge should check in this case's answer (``groundgate eval --judge``).
- ``label``: where the case came from, kept and not scored (``groundgate review export`` writes
  ``approved`` or ``rejected``: the reviewer's decision on the answer).
- ``answer``, ``context``, ``labels``, ``score``: what a case made from feedback
  (``groundgate datasets export --feedback``) keeps, not scored: the answer the gateway gave,
  the passages it was grounded on, the labels given and the mean feedback score in [0, 1].

A CSV file (by its ``.csv`` extension) has a header row naming these fields; an empty cell is
an absent field. A list field (``answers``, ``relevant_ids``, ``must_contain``, ...) is a JSON
array (``["a", "b"]``) or values separated by ``|`` (``a | b``; a value that holds ``|``
needs the JSON form); ``answerable`` is ``true`` or
``false``; ``history``, ``filters`` and ``schema`` are JSON. Problems are reported by the line
a row starts on (the header is line 1), as for JSONL.

Blank lines are allowed. Anything else that is wrong (bad JSON, a missing question, an unknown
key, a wrong type, a duplicate id, an unanswerable case with answers) is reported with its line
number, all bad lines at once; nothing is skipped silently. Types are checked strictly:
``"answerable": "yes"`` is an error, not a truthy string. A case without an id gets
``line-N`` from its line number.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from groundgate.errors import InvalidRequest
from groundgate.evals.answer_rules import check_pattern_definition, check_schema_definition

NonEmpty = Annotated[str, StringConstraints(min_length=1)]
# Problems listed in one error; beyond this the message says how many more there were.
MAX_REPORTED = 20


class ChatTurn(BaseModel):
    """One earlier turn of the conversation the question continues."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class EvalCase(BaseModel):
    """One evaluation case. See the module docstring for the meaning of each field."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)

    id: NonEmpty | None = None
    question: Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]
    history: list[ChatTurn] = Field(default_factory=list)
    answers: list[NonEmpty] = Field(default_factory=list)
    must_contain: list[NonEmpty] = Field(default_factory=list)
    must_not_contain: list[NonEmpty] = Field(default_factory=list)
    relevant_ids: list[NonEmpty] = Field(default_factory=list)
    answerable: bool = True
    filters: dict[str, Any] = Field(default_factory=dict)
    label: NonEmpty | None = None
    # "schema" in the file (the name would shadow pydantic's BaseModel.schema here).
    answer_schema: dict[str, Any] | bool | None = Field(None, alias="schema")
    pattern: NonEmpty | None = None
    reference_context: list[NonEmpty] = Field(default_factory=list)
    rubric: NonEmpty | None = None
    answer: str | None = None
    context: list[str] = Field(default_factory=list)
    labels: list[NonEmpty] = Field(default_factory=list)
    score: Annotated[float, Field(ge=0, le=1)] | None = None

    @field_validator("answer_schema")
    @classmethod
    def _usable_schema(cls, value: dict[str, Any] | bool | None) -> dict[str, Any] | bool | None:
        if value is not None:
            check_schema_definition(value)
        return value

    @field_validator("pattern")
    @classmethod
    def _usable_pattern(cls, value: str | None) -> str | None:
        if value is not None:
            check_pattern_definition(value)
        return value

    @property
    def case_id(self) -> str:
        """The id; the dataset loader always sets one, so this is never empty after loading."""
        return self.id or ""

    @property
    def has_rules(self) -> bool:
        return bool(self.must_contain or self.must_not_contain)


class DatasetError(InvalidRequest):
    """The dataset cannot be used. ``problems`` holds (line number or None, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[int | None, str]]) -> None:
        self.source = source
        self.problems = problems
        shown = [
            f"  {source}:{line}: {msg}" if line else f"  {source}: {msg}"
            for line, msg in problems[:MAX_REPORTED]
        ]
        if len(problems) > MAX_REPORTED:
            shown.append(f"  ... and {len(problems) - MAX_REPORTED} more")
        count = len(problems)
        super().__init__(
            f"invalid dataset {source} ({count} problem{'s' if count != 1 else ''}):\n"
            + "\n".join(shown)
        )


def _describe(exc: ValidationError) -> list[str]:
    messages = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        if error["type"] == "json_invalid":
            messages.append(f"not valid JSON ({error['ctx'].get('error', error['msg'])})")
        elif error["type"] == "extra_forbidden":
            messages.append(f"{where}: unknown field")
        elif error["type"] == "model_type" and not error["loc"]:
            messages.append("a case must be a JSON object")
        else:
            messages.append(f"{where}: {error['msg']}" if where else error["msg"])
    return messages


def parse_dataset(lines: Iterable[str], source: str = "<dataset>") -> list[EvalCase]:
    """Parse JSONL ``lines`` into cases, numbering lines from 1.

    Raises :class:`DatasetError` listing every bad line, or when there is no case at all.
    """

    def parsed() -> Iterator[tuple[int, EvalCase | list[str]]]:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield number, EvalCase.model_validate_json(line)
            except ValidationError as exc:
                yield number, _describe(exc)

    return _collect(parsed(), source)


# CSV cells of these fields hold a list: a JSON array or values separated by " | ".
_LIST_FIELDS = frozenset(
    name
    for name, info in EvalCase.model_fields.items()
    if name != "history" and getattr(info.annotation, "__origin__", None) is list
)
_JSON_FIELDS = frozenset({"history", "filters", "schema"})
_LIST_SEPARATOR = "|"


def _csv_cell(name: str, cell: str) -> Any:
    """The value of a CSV cell for field ``name``; ``ValueError`` says what is wrong."""
    text = cell.strip()
    if name in _LIST_FIELDS:
        if text.startswith("["):
            try:
                return json.loads(text)
            except ValueError:
                raise ValueError(f"{name}: not a valid JSON array") from None
        return [part.strip() for part in text.split(_LIST_SEPARATOR)]
    if name in _JSON_FIELDS:
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"{name}: not valid JSON") from None
    if name == "answerable":
        if text.lower() not in ("true", "false"):
            raise ValueError("answerable: expected true or false")
        return text.lower() == "true"
    if name == "score":
        try:
            return float(text)
        except ValueError:
            raise ValueError("score: not a number") from None
    return cell if name in ("question", "answer") else text


def parse_csv(text: str, source: str = "<dataset>") -> list[EvalCase]:
    """Parse a CSV dataset (a header row, then one case per row; module docstring).

    Raises :class:`DatasetError` listing every bad row by the line it starts on."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise DatasetError(source, [(1, f"not valid CSV: {exc}")]) from None
    if header is None or not any(cell.strip() for cell in header):
        raise DatasetError(source, [(None, "no cases (the file is empty)")])
    names = [cell.strip() for cell in header]
    known = {info.alias or name for name, info in EvalCase.model_fields.items()}
    header_problems: list[tuple[int | None, str]] = [
        (1, f"{name or '(empty)'}: unknown column") for name in names if name not in known
    ]
    header_problems += [
        (1, f"{name}: column given twice")
        for name in sorted({n for n in names if names.count(n) > 1})
    ]
    if header_problems:
        raise DatasetError(source, header_problems)

    def parsed() -> Iterator[tuple[int, EvalCase | list[str]]]:
        start = reader.line_num + 1
        while True:
            try:
                row = next(reader, None)
            except csv.Error as exc:
                yield start, [f"not valid CSV: {exc}"]
                return
            if row is None:
                return
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(names):
                yield number, [f"{len(row)} cells, the header has {len(names)}"]
                continue
            data: dict[str, Any] = {}
            problems = []
            for name, cell in zip(names, row, strict=True):
                if not cell.strip():
                    continue
                try:
                    data[name] = _csv_cell(name, cell)
                except ValueError as exc:
                    problems.append(str(exc))
            if problems:
                yield number, problems
                continue
            try:
                yield number, EvalCase.model_validate(data)
            except ValidationError as exc:
                yield number, _describe(exc)

    return _collect(parsed(), source)


def _collect(parsed: Iterable[tuple[int, EvalCase | list[str]]], source: str) -> list[EvalCase]:
    """The cases of a file, each with an id (``line-N`` when it has none), after the checks
    that span cases; every problem at once in a :class:`DatasetError`."""
    cases: list[EvalCase] = []
    problems: list[tuple[int | None, str]] = []
    first_line: dict[str, int] = {}
    for number, case in parsed:
        if isinstance(case, list):
            problems.extend((number, msg) for msg in case)
            continue
        if case.id is None:
            case = case.model_copy(update={"id": f"line-{number}"})
        if not case.answerable and case.answers:
            problems.append((number, "an unanswerable case (answerable: false) has answers"))
            continue
        case_id = case.case_id
        if case_id in first_line:
            problems.append(
                (number, f"duplicate id {case_id!r} (first on line {first_line[case_id]})")
            )
            continue
        first_line[case_id] = number
        cases.append(case)
    if not cases and not problems:
        problems.append((None, "no cases (the file is empty)"))
    if problems:
        raise DatasetError(source, problems)
    return cases


def load_dataset(path: str | Path) -> list[EvalCase]:
    """Read and validate a dataset file: CSV when its name ends in ``.csv``, else JSONL
    (UTF-8, a leading BOM is tolerated)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(
            str(path), [(None, f"cannot read the file: {exc.strerror or exc}")]
        ) from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(str(path), [(None, f"not UTF-8 text: {exc.reason}")]) from exc
    if path.suffix.lower() == ".csv":
        return parse_csv(text, str(path))
    # Split on newlines only: str.splitlines() would also break at U+2028 and friends, which
    # JSON allows inside strings, and the line numbers would no longer match an editor's.
    return parse_dataset(text.split("\n"), str(path))
