"""Loading prompt files: the packaged built-ins (``prompts/builtin/``) and a folder named in the
config (``[prompts] dir``), one ``NAME.toml`` per prompt (``prompts/format.py``).

A folder may add prompts and add versions to a built-in prompt; it may not redefine a version
that already exists with different content (a version never changes). Every problem in every
file is reported at once, with the file's path.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from groundgate.errors import ConfigError
from groundgate.prompts.format import PromptFile, PromptVersion

NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# name -> version -> PromptVersion
PromptTable = dict[str, dict[int, PromptVersion]]


def builtin_dir() -> Path:
    return Path(str(resources.files("groundgate.prompts") / "builtin"))


def load_prompt_files(folders: Iterable[Path | str]) -> PromptTable:
    """Every prompt of the built-in folder, then of ``folders`` in order."""
    table: PromptTable = {}
    problems: list[str] = []
    for folder in [builtin_dir(), *(Path(f) for f in folders)]:
        if not folder.is_dir():
            problems.append(f"{folder}: not a folder")
            continue
        for path in sorted(folder.glob("*.toml")):
            problems += _load_one(path, table, builtin=folder == builtin_dir())
    if problems:
        raise ConfigError(problems, source="prompts")
    return table


def _load_one(path: Path, table: PromptTable, *, builtin: bool) -> list[str]:
    name = path.stem
    if not NAME.match(name):
        return [f"{path}: a prompt name is lower-case letters, digits, '_', '.' and '-'"]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        parsed = PromptFile.model_validate(data)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return [f"{path}: {exc}"]
    except ValidationError as exc:
        return [
            f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
    origin = f"builtin:{path.name}" if builtin else str(path)
    problems: list[str] = []
    versions = table.setdefault(name, {})
    for spec in parsed.versions:
        version = PromptVersion(name, parsed.description, spec, origin)
        known = versions.get(spec.version)
        if known is not None and known.digest != version.digest:
            problems.append(
                f"{path}: {version.ref} is already defined by {known.origin} with other content "
                "(a version never changes: add a new version instead)"
            )
            continue
        versions[spec.version] = version
    return problems
