"""Language identification for the ``limits`` guard (``languages = ["en", "de"]``).

The model is py3langid's (a maintained fork of langid.py, BSD-3-Clause): a naive Bayes
classifier over byte n-grams for 139 languages, shipped inside its wheel (nothing is downloaded).
It is loaded on first use, once per process (~0.4 s, ~75 MB resident), and is then fast: a
500-token prompt takes ~0.2 ms (``bench/language.py`` measures it and the accuracy).

``detect_language`` gives the most likely language as an ISO 639-1 code with its probability.
The probability is calibrated for length (py3langid divides the scores by the square root of
the byte count before the softmax), so a few words, code, numbers or a URL get a low one, and
part of the mass of non-linguistic text goes to the model's "not a language" class, which is
never reported. On top of that, a text with fewer than ``FULL_CONFIDENCE_BYTES`` bytes of
letters (about four short words of Latin script, eight Chinese characters) gets proportionally
less: a single name can be a strong feature on its own ("Ukraine" alone was Crimean Tatar at
0.70). The guard therefore acts only when the top language is *not* allowed and its
probability is at least ``language_confidence`` (``LimitsGuard``, default 0.6): short or
ambiguous text is never refused as foreign.

The model's labels without an ISO 639-1 code are folded into the code the config speaks:
members of an ISO 639-3 macrolanguage into it (Wu and Cantonese into ``zh``, Moroccan and
Egyptian Arabic into ``ar``, ...), and two varieties the model gives ordinary text to: Nigerian
Pidgin (``pcm``, an English-based creole; it took informal English questions from English) into
``en``, and Extremaduran (``ext``) into ``es``. An allowed ``no`` (Norwegian) admits Bokmål and
Nynorsk.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

# No language found (empty text, or only the "not a language" class).
UNDETERMINED = "und"
_NOT_A_LANGUAGE = "zxx"
# Model label -> the ISO 639-1 code it is reported as (see the module docstring).
FOLDED = {
    "wuu": "zh",
    "yue": "zh",
    "ary": "ar",
    "arz": "ar",
    "uzs": "uz",
    "gug": "gn",
    "fuv": "ff",
    "sdh": "ku",
    "ltg": "lv",
    "kik": "ki",
    "pcm": "en",
    "ext": "es",
}
# An allowed macrolanguage admits its members that have their own ISO 639-1 code.
_MEMBERS = {"no": frozenset({"nb", "nn"})}
# Letters (UTF-8 bytes of alphabetic characters) a text needs for its full probability.
FULL_CONFIDENCE_BYTES = 24
# Longer texts are judged on their first and last characters: the language shows in a few
# hundred, and the cost stays bounded (the model walks every byte in Python).
MAX_CHARS = 3000
_HEAD_CHARS = 2000


@dataclass(frozen=True, slots=True)
class LanguageVerdict:
    language: str  # ISO 639-1 code of the most likely language, or "und"
    confidence: float  # its probability, in [0, 1]
    refused: bool  # not an allowed language, at or above the confidence asked for


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability) of the most likely language of ``text``;
    ``("und", 0.0)`` when there is nothing to judge. Loads the model on first use."""
    return _identifier().detect(_sample(text))


def check_language(text: str, allowed: list[str], min_confidence: float) -> LanguageVerdict:
    """Whether ``text`` is refused: its language is none of ``allowed`` (ISO 639-1 codes; empty
    allows all) with a probability of at least ``min_confidence``."""
    language, confidence = detect_language(text)
    admitted = set(allowed).union(*(_MEMBERS.get(code, ()) for code in allowed))
    refused = (
        bool(allowed)
        and language != UNDETERMINED
        and language not in admitted
        and confidence >= min_confidence
    )
    return LanguageVerdict(language, confidence, refused)


def _sample(text: str) -> str:
    if len(text) <= MAX_CHARS:
        return text
    return text[:_HEAD_CHARS] + "\n" + text[-(MAX_CHARS - _HEAD_CHARS) :]


def _length_weight(text: str) -> float:
    letters = 0
    for ch in text:  # stops as soon as there are enough (a prompt is long, the bar is low)
        if ch.isalpha():
            letters += 1 if ch < "\x80" else len(ch.encode())
            if letters >= FULL_CONFIDENCE_BYTES:
                return 1.0
    return letters / FULL_CONFIDENCE_BYTES


class _Identifier:
    """py3langid's model with probabilities on, and its labels folded to ISO 639-1."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def detect(self, text: str) -> tuple[str, float]:
        if not text.strip():
            return UNDETERMINED, 0.0
        totals: dict[str, float] = {}
        # rank(): every label once (the model's script aliases merged), most likely first.
        for label, probability in self._model.rank(text):
            if label != _NOT_A_LANGUAGE:
                code = FOLDED.get(label, label)
                totals[code] = totals.get(code, 0.0) + probability
        if not totals:
            return UNDETERMINED, 0.0
        code = max(totals, key=totals.__getitem__)
        return code, min(1.0, totals[code]) * _length_weight(text)

    def codes(self) -> frozenset[str]:
        """Every code ``detect`` can answer."""
        return frozenset(FOLDED.get(label, label) for label in self._model.labels) - {
            _NOT_A_LANGUAGE
        }


_lock = threading.Lock()
_loaded: _Identifier | None = None
load_ms: float | None = None


def _identifier() -> _Identifier:
    """The model, loaded by the first caller (others wait for that load, not their own)."""
    global _loaded, load_ms
    identifier = _loaded
    if identifier is not None:  # the common case: no lock once loaded
        return identifier
    with _lock:
        if _loaded is None:
            started = time.perf_counter()
            # Imported here: the package reads numpy arrays only, but a gateway whose apps
            # set no language limits should not hold the model.
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            _loaded = _Identifier(LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True))
            load_ms = (time.perf_counter() - started) * 1000
        return _loaded


def warm() -> None:
    """Load the model now (a server calls this off the event loop, before the first request
    whose app limits languages would otherwise wait ~0.4 s for it)."""
    _identifier()


def is_loaded() -> bool:
    return _loaded is not None


def known_languages() -> frozenset[str]:
    """The ISO 639-1 codes the model can detect (a listed code outside these is never seen,
    so text in that language would be taken for a neighbour and refused)."""
    return _identifier().codes()
