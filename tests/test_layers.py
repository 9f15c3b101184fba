"""The layer rules of DESIGN.md, as import-linter contracts ([tool.importlinter] in
pyproject.toml): kept by the code as it is, and broken by an import that crosses a layer."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import groundgate

SRC = Path(groundgate.__file__).resolve().parents[1]
ROOT = SRC.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` as ``make lint`` runs it, on the package under ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],  # reads ROOT/pyproject.toml
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def test_the_code_keeps_every_layer_contract() -> None:
    result = lint_imports(SRC)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 broken." in result.stdout


# One import that crosses a layer, per contract: (module, import added, what import-linter
# reports (external packages by their top name), the contract it breaks).
CROSSINGS = [
    ("providers/base.py", "groundgate.api", "groundgate.api", "Providers import nothing above"),
    ("store/base.py", "groundgate.observe.trace", "groundgate.observe.trace", "Layers along"),
    ("gateway/admission.py", "starlette.responses", "starlette", "Only api knows HTTP"),
    (
        "cache/answer.py",
        "groundgate.pipeline.stage",
        "groundgate.pipeline.stage",
        "Domain services never import pipeline",
    ),
    ("cli/keys.py", "groundgate.api.routes.admin", "groundgate.api.routes.admin", "The CLI calls"),
]


def test_an_import_across_a_layer_breaks_its_contract(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(SRC / "groundgate", copy / "groundgate", ignore=shutil.ignore_patterns("*.pyc"))
    for module, added, _, _ in CROSSINGS:
        path = copy / "groundgate" / module
        path.write_text(path.read_text("utf-8") + f"\nimport {added}  # noqa\n", "utf-8")
    result = lint_imports(copy)
    assert result.returncode != 0
    summary = result.stdout.split("Broken contracts")[0].splitlines()
    for module, _, reported, contract in CROSSINGS:
        assert any(line.startswith(contract) and " BROKEN" in line for line in summary), contract
        importer = "groundgate." + module.removesuffix(".py").replace("/", ".")
        assert f"{importer} -> {reported} (l." in result.stdout, (importer, result.stdout)


def test_provider_kinds_imports_nothing_so_config_may_read_it() -> None:
    tree = ast.parse((SRC / "groundgate/providers/kinds.py").read_text("utf-8"))
    imported = [
        node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    ] + [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    ]
    assert [name for name in imported if name.startswith("groundgate")] == []


def test_vendor_urls_are_written_in_providers_only() -> None:
    outside = [
        path.relative_to(SRC)
        for path in (SRC / "groundgate").rglob("*")
        if path.is_file()
        and path.suffix in (".py", ".toml")
        and not path.is_relative_to(SRC / "groundgate/providers")
        and (
            "api.openai.com" in path.read_text("utf-8")
            or "api.anthropic.com" in path.read_text("utf-8")
        )
    ]
    assert outside == []
