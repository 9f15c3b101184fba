"""Evaluation datasets: JSONL, one case per line, validated strictly.

A line is a JSON object::

    {"id"?: str, "question": str, "history"?: [{"role", "content"}, ...],
     "answers"?: [str, ...], "must_contain"?: [str, ...], "must_not_contain"?: [str, ...],
     "relevant_ids"?: [str, ...], "answerable"?: bool, "filters"?: {...}, "label"?: str,
     "answer"?: str, "context"?: [str, ...], "labels"?: [str, ...], "score"?: float}

- ``answers``: acceptable answers; any one of them is right (exact match and F1 take the best).
- ``must_contain`` / ``must_not_contain``: case-insensitive substrings the answer must / must
  not contain.
- ``relevant_ids``: ids of the documents that hold the answer (retrieval metrics).
- ``answerable`` (default true): false when the right behaviour is to abstain.
- ``filters``: metadata filters passed through to retrieval.
- ``label``: where the case came from, kept and not scored (``groundgate review export`` writes
  ``approved`` or ``rejected``: the reviewer's decision on the answer).
- ``answer``, ``context``, ``labels``, ``score``: what a case made from feedback
  (``groundgate datasets export --feedback``) keeps, not scored: the answer the gateway gave,
  the passages it was grounded on, the labels given and the mean feedback score in [0, 1].

Blank lines are allowed. Anything else that is wrong (bad JSON, a missing question, an unknown
key, a wrong type, a duplicate id, an unanswerable case with answers) is reported with its line
number, all bad lines at once; nothing is skipped silently. Types are checked strictly:
``"answerable": "yes"`` is an error, not a truthy string. A case without an id gets
``line-N`` from its line number.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from groundgate.errors import InvalidRequest

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

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

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
    answer: str | None = None
    context: list[str] = Field(default_factory=list)
    labels: list[NonEmpty] = Field(default_factory=list)
    score: Annotated[float, Field(ge=0, le=1)] | None = None

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
    cases: list[EvalCase] = []
    problems: list[tuple[int | None, str]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            case = EvalCase.model_validate_json(line)
        except ValidationError as exc:
            problems.extend((number, msg) for msg in _describe(exc))
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
    """Read and validate a JSONL dataset file (UTF-8, a leading BOM is tolerated)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DatasetError(
            str(path), [(None, f"cannot read the file: {exc.strerror or exc}")]
        ) from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(str(path), [(None, f"not UTF-8 text: {exc.reason}")]) from exc
    # Split on newlines only: str.splitlines() would also break at U+2028 and friends, which
    # JSON allows inside strings, and the line numbers would no longer match an editor's.
    return parse_dataset(text.split("\n"), str(path))
