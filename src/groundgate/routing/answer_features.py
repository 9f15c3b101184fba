"""Cheap features of a model's answer to a prompt, for the cascade's verifier: is there a final
answer, was it cut off, does it hedge, does its arithmetic hold, does the final number follow
from the reasoning. Regular expressions and tiny arithmetic only (tens of microseconds); no
model runs.
"""

from __future__ import annotations

import ast
import math
import re

import numpy as np
import numpy.typing as npt

from groundgate.routing.features import estimate_tokens

ANSWER_FEATURE_NAMES: tuple[str, ...] = (
    "final_marker",  # "####", "the answer is", "final answer", "Answer:" present
    "final_number",  # a final number could be read (after a marker, else the last number)
    "final_fraction",  # that number is not a whole number
    "final_negative",
    "final_in_reasoning",  # the final number was already written before the final line
    "final_in_prompt",  # the final number is one the prompt gave (often a copied input)
    "truncated",  # finish_reason "length"
    "hedges",  # however, assume, approximately, cannot, actually, ... (capped at 5)
    "refusal",  # "I'm sorry", "I cannot", "as an AI", "not enough information"
    "log_answer_tokens",
    "length_ratio",  # log((answer tokens + 1) / (prompt tokens + 1))
    "log_equations",  # log(1 + arithmetic claims checked: <<a+b=c>> and "a + b = c")
    "equations_wrong",  # share of those claims whose arithmetic is wrong
    "prompt_numbers_used",  # share of the prompt's numbers that the answer mentions
    "final_markers",  # how many final-answer markers (several: the answer changed its mind)
)

_NUM = r"-?\d[\d,]*(?:\.\d+)?"
_NUMBER = re.compile(_NUM)
# ``[ \t]``, not ``\s``, after ``^``: ``\s*`` would run over every following newline from each
# line start (quadratic on a text of blank lines).
_MARKER = re.compile(
    r"####|\bthe (?:final )?answer is\b|\bfinal answer\b|^[ \t]*answer[ \t]*:",
    re.IGNORECASE | re.M,
)
_AFTER_MARKER = re.compile(
    rf"(?:####|answer is|final answer|answer\s*:)[^\d\-\n]{{0,24}}({_NUM})", re.IGNORECASE
)
_HEDGE = re.compile(
    r"\b(?:however|assum\w*|approximately|roughly|round(?:ed|ing)?|cannot|can't|not possible|"
    r"impossible|actually|mistake|wait|unclear|seems|might|perhaps|likely|but since)\b",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:i'?m sorry|i cannot|i can't|as an ai|not enough information|"
    r"insufficient information|cannot be determined)\b",
    re.IGNORECASE,
)
# GSM8K-style calculator notes <<12*3=36>> and written claims "12 x 3 = 36".
_CALC = re.compile(r"<<([^<>=]{1,60})=([^<>]{1,24})>>")
# Written claims "12 x 3 = 36": each "= number", and the arithmetic just before it (at most
# _CLAIM_WINDOW characters back). Found in two bounded steps: one pattern with a repeated group
# of numbers and operators before the "=" backtracks quadratically over a long run of digits.
_EQUALS = re.compile(rf"=[ \t]{{0,3}}\$?({_NUM})")
_CLAIM_WINDOW = 80
_EXPRESSION_TAIL = re.compile(r"[\d.,+\-*/x\u00d7÷() \t]{1,80}$")
_OPERATOR = re.compile(r"\d[ \t)]{0,3}[-+*/x\u00d7÷][ \t(]{0,3}-?\d")
# A result followed by more arithmetic ("= 5 + 3") is a step, not a claim.
_CONTINUES = re.compile(r"[\d.]{0,20}[ \t]{0,3}[-+*/x\u00d7÷][ \t]{0,3}\d")
# The letter x between numbers is a times sign; what _evaluate accepts.
_TIMES_X = re.compile(r"(?<=[\d)\s])x(?=[\s\d(])")
_ARITHMETIC = re.compile(r"[\d.+\-*/()\s]{1,80}")
_MAX_CLAIMS = 20  # bounds the work on a long answer


def _to_float(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip().lstrip("$"))
    except ValueError:
        return None


def _evaluate(expression: str) -> float | None:
    """The value of ``expression`` if it is plain arithmetic (+ - * / and parentheses over
    numbers); None otherwise or on any error (division by zero, overflow)."""
    cleaned = expression.replace(",", "").replace("$", "").replace("\u00d7", "*").replace("÷", "/")
    cleaned = _TIMES_X.sub("*", cleaned)
    if len(cleaned) > 80 or not _ARITHMETIC.fullmatch(cleaned):
        return None
    try:
        node = ast.parse(cleaned, mode="eval").body
    except SyntaxError:
        return None
    return _value(node)


def _value(node: ast.expr) -> float | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        inner = _value(node.operand)
        return None if inner is None else (-inner if isinstance(node.op, ast.USub) else inner)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Sub | ast.Mult | ast.Div):
        left, right = _value(node.left), _value(node.right)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        return left / right if right != 0 else None
    return None


def _agrees(computed: float, claimed: float) -> bool:
    # Written results are often rounded (10.67 for 32/3): allow what rounding to 2 places,
    # or to a whole number, explains.
    if math.isclose(computed, claimed, rel_tol=1e-6, abs_tol=0.006):
        return True
    return abs(computed - claimed) < 0.5 and claimed == round(claimed) and abs(computed) > 10


def written_claims(answer: str) -> list[tuple[str, str]]:
    """``(expression, result)`` of each "a + b = c" written in ``answer`` (at most
    ``_MAX_CLAIMS``)."""
    claims: list[tuple[str, str]] = []
    for equals in _EQUALS.finditer(answer):
        if _CONTINUES.match(answer, equals.end(1)):
            continue
        window = answer[max(0, equals.start() - _CLAIM_WINDOW) : equals.start()]
        tail = _EXPRESSION_TAIL.search(window)
        if tail is None:
            continue
        expression = tail.group().strip().lstrip(".,")
        if _OPERATOR.search(expression):
            claims.append((expression, equals.group(1)))
            if len(claims) == _MAX_CLAIMS:
                break
    return claims


def equation_checks(answer: str) -> tuple[int, int]:
    """(arithmetic claims checked, of which wrong) in ``answer``."""
    checked = wrong = 0
    claims = [(m.group(1), m.group(2)) for m in _CALC.finditer(answer)]
    if not claims:  # an answer with calculator notes repeats them in prose: count them once
        claims = written_claims(answer)
    for expression, result in claims[:_MAX_CLAIMS]:
        computed = _evaluate(expression)
        claimed = _to_float(result.split("=")[-1])
        if computed is None or claimed is None:
            continue
        checked += 1
        wrong += not _agrees(computed, claimed)
    return checked, wrong


def final_number(answer: str) -> tuple[str | None, int]:
    """(the final answer's number as written, or None; how many final markers)."""
    markers = _AFTER_MARKER.findall(answer)
    if markers:
        return markers[-1], len(_MARKER.findall(answer))
    numbers = _NUMBER.findall(answer)
    return (numbers[-1] if numbers else None), len(_MARKER.findall(answer))


def _numbers(text: str) -> set[float]:
    values = (_to_float(n) for n in _NUMBER.findall(text))
    return {v for v in values if v is not None}


def answer_features(
    prompt: str, answer: str, finish_reason: str | None = None
) -> npt.NDArray[np.float64]:
    """The values of ``ANSWER_FEATURE_NAMES`` for ``answer`` to ``prompt``, in that order."""
    final_text, markers = final_number(answer)
    final = _to_float(final_text) if final_text is not None else None
    stripped = answer.rstrip()
    last_line_start = stripped.rfind("\n")
    reasoning = stripped[:last_line_start] if last_line_start > 0 else ""
    prompt_numbers = _numbers(prompt)
    answer_numbers = _numbers(answer)
    checked, wrong = equation_checks(answer)
    answer_tokens = estimate_tokens(answer)
    return np.array(
        [
            1.0 if markers else 0.0,
            1.0 if final is not None else 0.0,
            1.0 if final is not None and final != round(final) else 0.0,
            1.0 if final is not None and final < 0 else 0.0,
            1.0 if final is not None and final in _numbers(reasoning) else 0.0,
            1.0 if final is not None and final in prompt_numbers else 0.0,
            1.0 if finish_reason == "length" else 0.0,
            min(len(_HEDGE.findall(answer)), 5),
            1.0 if _REFUSAL.search(answer) else 0.0,
            math.log1p(answer_tokens),
            math.log((answer_tokens + 1) / (estimate_tokens(prompt) + 1)),
            math.log1p(checked),
            wrong / checked if checked else 0.0,
            len(prompt_numbers & answer_numbers) / len(prompt_numbers) if prompt_numbers else 1.0,
            min(markers, 5),
        ],
        dtype=np.float64,
    )
