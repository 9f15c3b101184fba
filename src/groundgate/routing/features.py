"""Cheap features of a request's text, shared by the learned router's training and serving.

Each feature is a few regular-expression passes over the prompt (tens of microseconds for a
typical question): size, how mathematical it looks, whether it asks for code or reasoning,
whether it is a multiple-choice question. ``FEATURE_NAMES`` is written into every model file;
a file trained with other names is refused, so adding a feature means retraining.
"""

from __future__ import annotations

import math
import re

import numpy as np
import numpy.typing as npt

from groundgate.gateway.shaping import estimate_output_tokens

FEATURE_NAMES: tuple[str, ...] = (
    "log_tokens",  # log(1 + estimated tokens)
    "log_lines",  # log(1 + non-empty lines)
    "digit_share",  # digits / characters
    "math_share",  # arithmetic and comparison symbols / characters
    "log_numbers",  # log(1 + numbers written in the text)
    "question_words",  # how many wh-words and "how many / how much" (capped at 5)
    "reasoning_words",  # calculate, prove, explain, step ... (capped at 5)
    "code",  # 1 when the text holds code (a fence, a def/class/function/#include line)
    "choices",  # 1 when it lists lettered options (A. / (B) ...), a multiple-choice question
    "mean_word_length",  # characters per word, capped at 15
)

_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_MATH = re.compile(r"[+\-*/=^<>%\u00d7÷√∑∫≤≥≠]")
_QUESTION = re.compile(
    r"\b(?:what|which|who|whom|whose|when|where|why|how many|how much|how)\b", re.IGNORECASE
)
_REASONING = re.compile(
    r"\b(?:calculate|compute|solve|prove|derive|explain|estimate|evaluate|determine|"
    r"step|steps|total|each|per|remaining|percent|average|ratio|probability)\b",
    re.IGNORECASE,
)
_CODE = re.compile(
    r"```|^[ \t]*(?:def |class |function |#include|import |public |SELECT |for \(|while \()",
    re.MULTILINE,
)
# ``[ \t]``, not ``\s``, after ``^``: see answer_features._MARKER.
_CHOICE = re.compile(r"^[ \t]*\(?[A-D][.)]\s", re.MULTILINE)
_WORD = re.compile(r"[^\W\d_]+")
_DIGIT = re.compile(r"\d")


def estimate_tokens(text: str) -> int:
    """Tokens of ``text`` as the gateway's request shaping estimates them (4 characters each)."""
    return estimate_output_tokens(len(text))


def request_features(text: str) -> npt.NDArray[np.float64]:
    """The values of ``FEATURE_NAMES`` for ``text``, in that order."""
    chars = max(len(text), 1)
    digits = len(_DIGIT.findall(text))
    words = _WORD.findall(text)
    lines = sum(1 for line in text.splitlines() if line.strip())
    return np.array(
        [
            math.log1p(estimate_tokens(text)),
            math.log1p(lines),
            digits / chars,
            len(_MATH.findall(text)) / chars,
            math.log1p(len(_NUMBER.findall(text))),
            min(len(_QUESTION.findall(text)), 5),
            min(len(_REASONING.findall(text)), 5),
            1.0 if _CODE.search(text) else 0.0,
            1.0 if len(_CHOICE.findall(text)) >= 2 else 0.0,
            min(sum(map(len, words)) / len(words), 15.0) if words else 0.0,
        ],
        dtype=np.float64,
    )
