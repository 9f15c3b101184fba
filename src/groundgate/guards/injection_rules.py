"""Cheap phrase rules for prompt injection: one binary feature per family of attack.

The rules are features of the classifier (``injection.py``), not verdicts on their own: a
support page may well say "ignore the previous instructions in step 2". Each family lists
the phrasing in English and, where it is one pattern more, German (deepset's training data is
half German), French, Spanish, Italian and Portuguese.

Every pattern runs in linear time (tests/test_regex_redos.py): the gaps between two words are
bounded (``{0,40}``), never ``.*``, so a long text costs a constant amount per position.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

_I = re.IGNORECASE
# Up to a few words between a verb and its object ("ignore all of the previous instructions").
_GAP = r"[\s\w,'\u2019-]{0,40}?"

RULE_FAMILIES: dict[str, tuple[re.Pattern[str], ...]] = {
    # "Ignore all previous instructions", "forget everything above".
    "override": (
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|overlook|skip)\b"
            + _GAP
            + r"\b(?:instructions?|prompts?|rules?|directions?|guidelines?|tasks?|context"
            r"|everything|orders?|commands?|constraints?|restrictions?)\b",
            _I,
        ),
        re.compile(
            r"\b(?:ignorier|vergiss|vergesse|missacht|überspring)\w{0,3}\b"
            + _GAP
            + r"\b(?:anweisung|befehl|aufgabe|regel|instruktion|vorgabe|alles|vorher)\w{0,3}\b",
            _I,
        ),
        re.compile(
            r"\b(?:ignore[rz]?|oublie[rz]?|ignora|ignore|olvida|olvide|dimentica|esquece|esqueça)"
            r"\b" + _GAP + r"\b(?:instructions?|consignes?|règles?|tout|instrucciones|reglas|todo"
            r"|istruzioni|regole|tutto|instruções|regras|tudo)\b",
            _I,
        ),
    ),
    # "Your new task is", "now focus on", "neue Aufgabe".
    "new_task": (
        re.compile(
            r"\b(?:new|next|real|actual|different)\s+(?:task|instructions?|assignment|role"
            r"|mission|objective)\b",
            _I,
        ),
        re.compile(r"\bnow\s+(?:focus|concentrate|your\s+task|you\s+(?:must|will|have))\b", _I),
        re.compile(r"\bneuen?\s+(?:aufgaben?|anweisungen?|rolle|auftrag)\b", _I),
        re.compile(r"\bjetzt\s+(?:konzentrier|fokussier|deine\s+aufgabe)", _I),
        re.compile(
            r"\b(?:nouvelles?\s+(?:tâches?|instructions?|consignes?)"
            r"|nuevas?\s+(?:tareas?|instrucci(?:ón|on|ones))|nuov[ae]\s+(?:compit|istruzion)\w{0,2}"
            r"|nova\s+tarefa|novas\s+instruções)\b",
            _I,
        ),
    ),
    # "You are now", "act as", "pretend to be", "du bist jetzt".
    "persona": (
        re.compile(r"\byou\s+are\s+(?:now|no\s+longer)\b", _I),
        re.compile(r"\bfrom\s+now\s+on\b", _I),
        re.compile(r"\b(?:act|behave|respond|roleplay|role-play)\s+(?:as|like)\b", _I),
        re.compile(r"\bpretend\s+(?:to\s+be|you\s+are|that\s+you)\b", _I),
        re.compile(r"\bdu\s+bist\s+(?:jetzt|nun|ab\s+(?:jetzt|sofort)|kein)\b", _I),
        re.compile(r"\b(?:ab\s+(?:jetzt|sofort)|tu\s+so,?\s+als|gib\s+dich\s+als)\b", _I),
        re.compile(
            r"\b(?:tu\s+es\s+maintenant|à\s+partir\s+de\s+maintenant|ahora\s+eres"
            r"|a\s+partir\s+de\s+ahora|ora\s+sei|d'ora\s+in\s+poi|agora\s+você\s+é)\b",
            _I,
        ),
    ),
    # Jailbreak vocabulary: DAN, developer mode, "without any restrictions".
    "jailbreak": (
        re.compile(r"\b(?:DAN|STAN)\b"),
        re.compile(
            r"\b(?:jailbr(?:eak|oken)\w{0,3}|developer\s+mode|do\s+anything\s+now|god\s+mode"
            r"|unfiltered|uncensored|amoral|no\s+(?:restrictions|limits|limitations|filters?"
            r"|rules|ethics|morals|guidelines)"
            r"|without\s+(?:any\s+)?(?:restrictions|limitations|filters?|censorship|rules))\b",
            _I,
        ),
        re.compile(
            r"\b(?:ohne\s+(?:jegliche\s+)?(?:einschränkungen|filter|regeln|zensur)"
            r"|sans\s+(?:aucune\s+)?(?:restriction|limite|censure)s?"
            r"|sin\s+(?:ninguna\s+)?(?:restricci(?:ón|ones)|censura|l[ií]mites))\b",
            _I,
        ),
    ),
    # Asking for the system prompt, the instructions, a secret.
    "exfiltration": (
        re.compile(
            r"\b(?:system|initial|original|hidden|secret|previous|developer)\s*"
            r"(?:prompt|instructions?|message)s?\b",
            _I,
        ),
        re.compile(
            r"\b(?:reveal|show|print|repeat|output|display|leak|tell\s+me|give\s+me|spell)\b"
            + _GAP
            + r"\b(?:prompt|instructions|password|secret|api\s+key|your\s+rules)\b",
            _I,
        ),
        re.compile(
            r"\b(?:systemprompt|systemanweisung\w{0,2}|(?:zeige?|gib|verrate|nenne|wiederhole)"
            + _GAP
            + r"\b(?:prompt|anweisungen|passwort|geheimnis))\b",
            _I,
        ),
    ),
    # Forcing a verbatim output: 'say "I have been PWNED"', 'antworte mit "..."'.
    "forced_output": (
        re.compile(
            r"\b(?:say|print|write|output|type|respond\s+with|reply\s+with|answer\s+with"
            r"|sag|schreib|antworte\s+mit|gib\s+aus|dis|écris|di|escribe)\w{0,2}[\s:]{1,4}"
            r"(?:only\s+|exactly\s+|just\s+|nur\s+)?[\"'“„«]",
            _I,
        ),
        re.compile(r"\b(?:pwned|hacked)\b", _I),
    ),
    # Chat-template and role markers pasted into a message.
    "role_markers": (
        re.compile(r"(?m)^[ \t]{0,8}(?:system|assistant|###\s{0,3}instruction)[ \t]{0,4}:", _I),
        re.compile(r"<\|(?:im_start|im_end|system|endoftext)\|>|\[/?INST\]|<</?SYS>>", _I),
    ),
}

RULE_NAMES: tuple[str, ...] = tuple(RULE_FAMILIES)


def matched_rules(text: str) -> tuple[str, ...]:
    """The families with at least one pattern found in ``text``, in ``RULE_NAMES`` order."""
    return tuple(
        name
        for name, patterns in RULE_FAMILIES.items()
        if any(pattern.search(text) for pattern in patterns)
    )


def rule_vector(text: str) -> npt.NDArray[np.float64]:
    """One 0/1 value per family, in ``RULE_NAMES`` order."""
    found = set(matched_rules(text))
    return np.array([1.0 if name in found else 0.0 for name in RULE_NAMES], dtype=np.float64)
