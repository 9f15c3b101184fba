"""Every regular expression in Groundgate runs in linear time (issue 12, ReDoS).

A pattern that backtracks on a long run of one character class followed by a character it
cannot take ("....x", "# a      x") costs quadratic time: seconds at 50,000 characters, and
the event loop stalls for all of them. Each module-level pattern of the package is collected
(inline ``re.search(r"...")`` calls are not allowed, so none escapes) and run over long runs
of every character class, alone and after the prefixes that reach the patterns' inner parts,
with ``findall`` (which scans as ``search``, ``sub`` and ``split`` do) and ``fullmatch``.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import pkgutil
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import groundgate

PACKAGE = Path(groundgate.__file__).parent
RUN = 50_000  # characters in each pathological run
BOUND_S = 1.0  # a linear pattern takes milliseconds here; a quadratic one, seconds

# Runs of each character class (and of the pairs that alternate in real text).
ATOMS = [
    " ", "\t", "\n", "\u00a0", "a", "A", "1", "_", "é", "漢", ".", "!", "?", "…", ",", ";",
    ":", "#", "-", "'", '"', "\\", "[", "(", ")", "*", "`", "~", "|", "/", "。",
    "a ", "A ", "Ab ", "1,", "1.", "a.", ". ", "# ", " #", "\n\n", " \n", "[1]", "!'", "\\\\",
    "sk-", "or not ",
]  # fmt: skip
# Prefixes that reach a pattern's inner part before the run: a heading's title, a front-matter
# value, a key's value, a label, a name, a numbered item.
PREFIXES = [
    "# a", "###### a", "a: a", "---\n", "bearer ", "api_key=", "gg_", "sk-a", "please ",
    "hi ", "The A", "Title: a", "x.", "1. ", "[1] a", "what ", "or not", "no. ", "a.b",
]  # fmt: skip
PREFIXED_ATOMS = [" ", ".", "a"]
# What ends a run: a character no class above takes (or, for bare runs, the end of the text).
STOP = "\x00"
REGEX_CALLS = {"compile", "search", "match", "fullmatch", "sub", "subn", "split", "findall",
               "finditer"}  # fmt: skip


def _modules() -> Iterator[object]:
    for info in pkgutil.walk_packages(groundgate.__path__, "groundgate."):
        if info.name.endswith("__main__"):
            continue
        yield importlib.import_module(info.name)


def _patterns_in(name: str, value: object) -> Iterator[tuple[str, re.Pattern[str]]]:
    if isinstance(value, re.Pattern):
        yield name, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _patterns_in(f"{name}[{i}]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _patterns_in(f"{name}[{key!r}]", item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        # A pattern held in a record (a redaction shape: pattern, replacement, guards).
        for field in dataclasses.fields(value):
            yield from _patterns_in(f"{name}.{field.name}", getattr(value, field.name))


def collect_patterns() -> dict[str, re.Pattern[str]]:
    """Every compiled pattern held at module level in the package (in lists and dicts too),
    by the first name it is found under."""
    found: dict[str, re.Pattern[str]] = {}
    seen: set[tuple[object, int]] = set()
    for module in _modules():
        for attr, value in vars(module).items():
            for name, pattern in _patterns_in(f"{module.__name__}.{attr}", value):
                if (pattern.pattern, pattern.flags) not in seen:
                    seen.add((pattern.pattern, pattern.flags))
                    found[name] = pattern
    return found


PATTERNS = collect_patterns()


def pathological_texts() -> Iterator[str]:
    for atom in ATOMS:
        yield atom * (RUN // len(atom)) + STOP
        yield atom * (RUN // len(atom))
    for prefix in PREFIXES:
        for atom in PREFIXED_ATOMS:
            yield prefix + atom * (RUN // len(atom)) + STOP


def _run(pattern: re.Pattern[str], text: str) -> None:
    pattern.findall(text)  # scans the whole text, as search, sub and split do
    pattern.fullmatch(text)


def test_patterns_are_collected() -> None:
    names = set(PATTERNS)
    # The patterns of issue 12, and that collection reaches lists of patterns.
    for expected in (
        "groundgate.cache.normalize._SPACE_BEFORE_PUNCT",
        "groundgate.retrieval.chunking._SENTENCE_END",
        "groundgate.providers.local.sentences._BOUNDARY",
        "groundgate.retrieval.loaders_text._FRONT_FIELD",
        "groundgate.observe.redact._SHAPES[1].pattern",
    ):
        assert expected in names
    assert len(PATTERNS) >= 50


@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_pattern_is_linear_on_pathological_input(name: str) -> None:
    pattern = PATTERNS[name]
    for text in pathological_texts():
        started = time.perf_counter()
        _run(pattern, text)
        elapsed = time.perf_counter() - started
        assert elapsed < BOUND_S, (
            f"{name} ({pattern.pattern!r}) took {elapsed:.1f}s on "
            f"{text[:12]!r}... ({len(text)} chars) ending {text[-2:]!r}"
        )


def _regex_calls(tree: ast.Module) -> Iterator[tuple[ast.Call, bool]]:
    """Each ``re.<function>(...)`` call, and whether it sits in a function or class body."""

    def walk(node: ast.AST, nested: bool) -> Iterator[tuple[ast.Call, bool]]:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
            )
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Attribute)
                and isinstance(child.func.value, ast.Name)
                and child.func.value.id == "re"
                and child.func.attr in REGEX_CALLS
            ):
                yield child, inner
            yield from walk(child, inner)

    yield from walk(tree, False)


# Patterns that can only be compiled at run time, each for a reason this test cannot check:
# how many ``re.compile`` calls in functions each file may hold.
RUNTIME_COMPILES = {
    # The policy guard's deny patterns come from the operator's config (checked to compile at
    # start-up, compiled once per pipeline): trusted input, like the config file itself.
    "config_guards.py": 1,
    # compile_deny (the same operator patterns), and a sentence found again in an answer:
    # re.escape'd words joined by \s+, linear by construction.
    "guards/output.py": 2,
    # The rules router's flagship keywords (operator config): re.escape'd words joined by |.
    "routing/rules.py": 1,
}


def test_every_pattern_is_compiled_at_module_level() -> None:
    """Inline patterns (``re.search(r"...", text)``, or ``re.compile`` in a function) would
    escape the test above, so there are none, but for the few ``RUNTIME_COMPILES`` names."""
    offenders = []
    runtime: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        name = str(path.relative_to(PACKAGE))
        for call, nested in _regex_calls(tree):
            assert isinstance(call.func, ast.Attribute)
            if call.func.attr == "compile" and nested and name in RUNTIME_COMPILES:
                runtime[name] = runtime.get(name, 0) + 1
            elif call.func.attr != "compile" or nested:
                offenders.append(f"{name}:{call.lineno} re.{call.func.attr}")
    assert not offenders, offenders
    assert runtime == RUNTIME_COMPILES
