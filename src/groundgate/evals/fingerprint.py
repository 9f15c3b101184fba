"""What an answer depends on, named and digested: the eval cache keys answers by it (a change
to any part is a miss), and every stored run records it (``eval history`` shows which config,
prompt and model versions produced which scores)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson


def digest(value: Any) -> str:
    """A stable sha256 of a JSON-able value (keys sorted, so dict order never matters)."""
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The system under test as configured for a run."""

    config_digest: str  # everything below plus the rest of the effective config
    prompt_versions: dict[str, str] = field(default_factory=dict)  # role -> name@version
    model_versions: dict[str, list[str]] = field(default_factory=dict)  # model -> deployments
    kb_version: str | None = None
    variant: str | None = None  # the A/B variant pinned for the run

    @property
    def scope(self) -> str:
        """The cache scope: a digest of every field (the KB version is not in the config)."""
        return digest(asdict(self))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Fingerprinted(Protocol):
    """An answerer that can say what its answers depend on (so they may be cached)."""

    async def fingerprint(self) -> Fingerprint: ...
