"""Language identification for the ``limits`` guard: ordinary requests in ten languages are
told apart, and text with no language to speak of (a word, code, numbers) is never refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from groundgate.config_guards import LimitsGuard
from groundgate.guards.language import (
    MAX_CHARS,
    UNDETERMINED,
    check_language,
    detect_language,
    known_languages,
)

FIXTURE = Path(__file__).parent / "data" / "languages.jsonl"
ROWS = [json.loads(line) for line in FIXTURE.read_text("utf-8").splitlines() if line.strip()]
SENTENCES = [r for r in ROWS if r["lang"] != UNDETERMINED]
NO_LANGUAGE = [r["text"] for r in ROWS if r["lang"] == UNDETERMINED]
LANGUAGES = sorted({r["lang"] for r in SENTENCES})
THRESHOLD = LimitsGuard().language_confidence


def test_sentences_are_told_apart() -> None:
    wrong = [
        (r["lang"], detect_language(r["text"]), r["text"])
        for r in SENTENCES
        if detect_language(r["text"])[0] != r["lang"]
    ]
    # 200 sentences, 20 in each language; one short Portuguese one reads as Spanish.
    assert len(SENTENCES) == 200 and len(wrong) <= 2, wrong


@pytest.mark.parametrize("text", NO_LANGUAGE)
def test_no_language_is_never_refused(text: str) -> None:
    code, confidence = detect_language(text)
    assert confidence < THRESHOLD, (code, confidence)
    for allowed in LANGUAGES:
        assert not check_language(text, [allowed], THRESHOLD).refused


def test_foreign_sentences_are_refused_and_own_ones_pass() -> None:
    refused = missed = 0
    for r in SENTENCES:
        assert not check_language(r["text"], [r["lang"]], THRESHOLD).refused, r
        for allowed in LANGUAGES:
            if allowed != r["lang"]:
                if check_language(r["text"], [allowed], THRESHOLD).refused:
                    refused += 1
                else:
                    missed += 1
    assert refused / (refused + missed) >= 0.95


def test_verdict_names_language_and_confidence() -> None:
    german = "Ich habe mein Passwort vergessen und komme nicht mehr in mein Konto."
    verdict = check_language(german, ["en"], THRESHOLD)
    assert verdict.refused and verdict.language == "de" and verdict.confidence > 0.9
    assert not check_language(german, ["en", "de"], THRESHOLD).refused
    assert not check_language(german, [], THRESHOLD).refused  # no languages: any
    confident = verdict.confidence
    assert not check_language(german, ["en"], min(1.0, confident + 1e-6)).refused


def test_folded_labels_and_macrolanguages() -> None:
    # Wu Chinese and Cantonese are reported as zh (the model gives them a third of this one);
    # an allowed "no" admits Nynorsk.
    code, confidence = detect_language("开银行账户需要哪些文件")
    assert code == "zh" and confidence > 0.95
    nynorsk = "Eg har gløymt passordet mitt og kjem ikkje inn på kontoen min lenger."
    code, _ = detect_language(nynorsk)
    assert code in {"nn", "no"}
    assert not check_language(nynorsk, ["no"], THRESHOLD).refused
    assert {"en", "zh", "ar", "no", "nn"} <= known_languages()
    assert not {"wuu", "yue", "pcm", "zxx"} & known_languages()


def test_empty_and_long_text() -> None:
    assert detect_language("") == (UNDETERMINED, 0.0)
    assert detect_language("   \n") == (UNDETERMINED, 0.0)
    # A long text is judged on its head and tail (bounded cost): still French.
    french = "Nous partons à la montagne le week-end prochain, quel temps fera-t-il ? "
    assert detect_language(french * (4 * MAX_CHARS // len(french)))[0] == "fr"


def test_model_loads_on_first_use() -> None:
    code = (
        "import sys; import groundgate.guards.language as language; "
        "assert not language.is_loaded() and 'py3langid' not in sys.modules; "
        "language.detect_language('Wie spät ist es gerade in Berlin?'); "
        "assert language.is_loaded() and language.load_ms > 0"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_config_takes_iso_639_1_codes() -> None:
    assert LimitsGuard(languages=["EN", " de"]).languages == ["en", "de"]
    with pytest.raises(ValidationError, match="ISO 639-1"):
        LimitsGuard(languages=["eng"])
    with pytest.raises(ValidationError):
        LimitsGuard(language_confidence=1.5)
