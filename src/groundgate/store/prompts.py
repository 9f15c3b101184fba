"""Prompt labels, their audit trail and the versions already used, as persisted.

Prompts are config, so labels are gateway-wide (no tenant): ``production`` of ``support`` is
the same version for every tenant and every replica. Each move of a label is audited with who
made it (the tenant and key id of an HTTP caller, or ``cli:USER``). A version's digest is
recorded the first time it is served or promoted; the registry (``prompts/registry.py``)
refuses a prompt file whose used version no longer has that digest, so a version never changes
once it produced an answer.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class PromptLabel:
    name: str
    label: str
    version: int
    updated_at: float
    updated_by: str


@dataclass(frozen=True, slots=True)
class LabelMove:
    """One audited move: ``from_version`` None when the label was first set."""

    name: str
    label: str
    from_version: int | None
    to_version: int
    moved_at: float
    moved_by: str  # a key id, "admin" (the bootstrap key or open mode) or "cli:USER"
    tenant: str | None  # the mover's tenant (None from the CLI)
    key_id: str | None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class UsedVersion:
    name: str
    version: int
    digest: str
    first_used_at: float


class PromptStore(Protocol):
    async def get_label(self, name: str, label: str) -> PromptLabel | None: ...

    async def list_labels(self, name: str | None = None) -> list[PromptLabel]:
        """Every label (of ``name``), by name then label."""
        ...

    async def move_label(
        self,
        name: str,
        label: str,
        version: int,
        *,
        at: float,
        moved_by: str,
        tenant: str | None,
        key_id: str | None,
        note: str | None = None,
    ) -> LabelMove:
        """Point ``label`` at ``version`` and audit the move, atomically (two moves at once
        each record the version the other left, never the same ``from``)."""
        ...

    async def label_history(self, name: str, *, limit: int = 100) -> list[LabelMove]:
        """The moves of ``name``'s labels, newest first."""
        ...

    async def mark_used(self, name: str, version: int, digest: str, *, at: float) -> str:
        """Record ``digest`` for ``name@version`` unless one is recorded; return the recorded
        one (the first wins, so a caller whose digest differs learns the version changed)."""
        ...

    async def used_versions(self, name: str | None = None) -> list[UsedVersion]:
        """The versions (of ``name``) used so far, by name then version."""
        ...


LABEL_COLUMNS = "name, label, version, updated_at, updated_by"
MOVE_COLUMNS = "name, label, from_version, to_version, moved_at, moved_by, tenant, key_id, note"
USED_COLUMNS = "name, version, digest, first_used_at"


def move_row(move: LabelMove) -> tuple[Any, ...]:
    """The move as a row in ``MOVE_COLUMNS`` order (the dataclass's field order)."""
    return astuple(move)
