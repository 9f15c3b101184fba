"""The prompt registry: every version of every prompt (the packaged built-ins and the files of
``[prompts] dir``), the labels that point at them (kept in the store) and what each costs.

An app names ``name@N``, ``name@label`` or ``name`` (the latest version); :meth:`resolve`
turns that into one :class:`PromptVersion`, and everything downstream (the answer's
``groundgate.prompt``, the trace, the cache key) names that version, never the label.

Labels move without a restart: a lookup is cached for ``label_refresh_s`` (0: read the store
on every request); a move made through this registry updates its own cache at once, so only
other processes (the CLI, other replicas) wait out the refresh.

A version never changes once used: its digest is recorded the first time it is served or
promoted, and a version whose file content no longer has that digest is refused (at start-up,
by :meth:`check`, and on any later use). Prompt files are read once, at start-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from groundgate.config import Settings
from groundgate.config_prompts import LABEL, PromptRef, PromptsConfig, parse_ref
from groundgate.errors import ConfigError, InvalidRequest, NotFound, PromptUnavailable
from groundgate.prompts.files import PromptTable, load_prompt_files
from groundgate.prompts.format import PromptVersion
from groundgate.retrieval.chunking import estimate_tokens
from groundgate.store.prompts import LabelMove, PromptStore


@dataclass(frozen=True, slots=True)
class ChangedVersion:
    """A used version whose file now holds other content."""

    ref: str
    origin: str
    used_digest: str
    file_digest: str

    def problem(self) -> str:
        return (
            f"{self.origin}: {self.ref} changed after it was used (digest "
            f"{self.file_digest[:12]}, used as {self.used_digest[:12]}); a version never "
            "changes: restore its content and add a new version instead"
        )


class PromptRegistry:
    def __init__(
        self,
        table: PromptTable,
        store: PromptStore,
        *,
        label_refresh_s: float = 1.0,
        count_tokens: Callable[[str], int] = estimate_tokens,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._table = table
        self._store = store
        self._refresh_s = label_refresh_s
        self._count_tokens = count_tokens
        self._clock = clock
        # (name, label) -> (read at, version or None when unset)
        self._labels: dict[tuple[str, str], tuple[float, int | None]] = {}
        # Versions this process has recorded as used (one store write per version).
        self._used: set[tuple[str, int]] = set()
        # Versions refused because their content changed after use: ref -> why.
        self._changed: dict[str, ChangedVersion] = {}

    @classmethod
    def load(
        cls,
        config: PromptsConfig,
        store: PromptStore,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> PromptRegistry:
        """The built-ins plus ``config.dir``'s files. Raises ConfigError naming each bad file."""
        table = load_prompt_files([config.dir] if config.dir else [])
        return cls(table, store, label_refresh_s=config.label_refresh_s, clock=clock)

    # -- the files ------------------------------------------------------------------------

    def names(self) -> list[str]:
        return sorted(self._table)

    def versions(self, name: str) -> dict[int, PromptVersion]:
        """``name``'s versions by number, oldest first. NotFound for an unknown name."""
        versions = self._table.get(name)
        if not versions:
            raise NotFound(
                f"No prompt named '{name[:64]}' (prompts: {', '.join(self.names())}).",
                param="name",
                code="prompt_not_found",
            )
        return dict(sorted(versions.items()))

    def version(self, name: str, number: int) -> PromptVersion:
        found = self.versions(name).get(number)
        if found is None:
            known = ", ".join(str(n) for n in self.versions(name))
            raise NotFound(
                f"Prompt '{name}' has no version {number} (versions: {known}).",
                param="version",
                code="prompt_version_not_found",
            )
        return found

    def latest(self, name: str) -> PromptVersion:
        return list(self.versions(name).values())[-1]

    def tokens(self, version: PromptVersion) -> int:
        """The version's fixed cost per request: the estimated tokens of what it always sends
        (``retrieval.chunking.estimate_tokens`` of its static text, the counter the context
        budget uses; it errs high)."""
        return self._count_tokens(version.static_text())

    # -- labels ---------------------------------------------------------------------------

    async def resolve(self, ref: str | PromptRef) -> PromptVersion:
        """The version ``ref`` names now, recorded as used. NotFound for an unknown name or
        version; PromptUnavailable for a label that is unset or points at a version these
        files lack, and for a version whose content changed after it was used."""
        version = await self.lookup(parse_ref(ref) if isinstance(ref, str) else ref)
        await self._use(version)
        return version

    async def lookup(self, parsed: PromptRef) -> PromptVersion:
        """The version ``parsed`` names now, without recording it as used (to show it)."""
        if parsed.label is not None:
            number = await self.label_version(parsed.name, parsed.label)
            if number is None:
                raise PromptUnavailable(
                    f"Prompt '{parsed}': the label '{parsed.label}' is not set (set it with "
                    f"`groundgate prompts promote {parsed.name}@N --label {parsed.label}`)."
                )
            version = self.versions(parsed.name).get(number)
            if version is None:
                raise PromptUnavailable(
                    f"Prompt '{parsed}' points at version {number}, which this gateway's "
                    "prompt files do not define (deploy the file, then restart)."
                )
        elif parsed.version is not None:
            version = self.version(parsed.name, parsed.version)
        else:
            version = self.latest(parsed.name)
        return version

    async def label_version(self, name: str, label: str, *, fresh: bool = False) -> int | None:
        """The version ``label`` points at (None: unset), read at most every refresh."""
        key = (name, label)
        now = self._clock()
        cached = self._labels.get(key)
        if not fresh and cached is not None and now - cached[0] < self._refresh_s:
            return cached[1]
        found = await self._store.get_label(name, label)
        number = None if found is None else found.version
        self._labels[key] = (now, number)
        return number

    async def labels(self, name: str | None = None) -> dict[str, dict[str, int]]:
        """Labels as stored now (of ``name``): name -> label -> version."""
        out: dict[str, dict[str, int]] = {}
        for lab in await self._store.list_labels(name):
            out.setdefault(lab.name, {})[lab.label] = lab.version
        return out

    async def used(self, name: str | None = None) -> dict[str, set[int]]:
        """The versions used so far (of ``name``): name -> versions."""
        out: dict[str, set[int]] = {}
        for used in await self._store.used_versions(name):
            out.setdefault(used.name, set()).add(used.version)
        return out

    async def promote(
        self,
        name: str,
        number: int,
        label: str,
        *,
        moved_by: str,
        tenant: str | None,
        key_id: str | None,
        note: str | None = None,
    ) -> LabelMove:
        """Point ``label`` at ``name@number`` (audited); this process sees it at once."""
        if not LABEL.match(label):
            raise InvalidRequest(
                f"'{label[:64]}' is not a label: lower-case letters, digits, '_' and '-', "
                "starting with a letter",
                param="label",
                code="invalid_label",
            )
        version = self.version(name, number)
        await self._use(version)  # promoting uses it: its content is fixed from here on
        move = await self._store.move_label(
            name,
            label,
            number,
            at=time.time(),
            moved_by=moved_by,
            tenant=tenant,
            key_id=key_id,
            note=note,
        )
        self._labels[(name, label)] = (self._clock(), number)
        return move

    async def history(self, name: str, *, limit: int = 100) -> list[LabelMove]:
        self.versions(name)  # NotFound for an unknown name
        return await self._store.label_history(name, limit=limit)

    # -- versions never change ------------------------------------------------------------

    async def _use(self, version: PromptVersion) -> None:
        key = (version.name, version.version)
        if key in self._used:
            return
        changed = self._changed.get(version.ref)
        if changed is None:
            recorded = await self._store.mark_used(
                version.name, version.version, version.digest, at=time.time()
            )
            if recorded == version.digest:
                self._used.add(key)
                return
            changed = ChangedVersion(version.ref, version.origin, recorded, version.digest)
            self._changed[version.ref] = changed
        raise PromptUnavailable(changed.problem())

    async def changed_versions(self) -> list[ChangedVersion]:
        """The used versions whose files now hold other content."""
        changed = []
        for used in await self._store.used_versions():
            version = self._table.get(used.name, {}).get(used.version)
            if version is not None and version.digest != used.digest:
                changed.append(
                    ChangedVersion(version.ref, version.origin, used.digest, version.digest)
                )
        self._changed = {c.ref: c for c in changed}
        return changed

    def check_names(self, refs: Mapping[str, str]) -> None:
        """Before the store is open: each ``where: ref`` names a known prompt, and a version
        its files define. Raises ConfigError with every problem."""
        problems = []
        for where, ref in refs.items():
            try:
                parsed = parse_ref(ref)
                if parsed.version is not None:
                    self.version(parsed.name, parsed.version)
                else:
                    self.versions(parsed.name)
            except (ValueError, NotFound) as exc:
                problems.append(f"{where}: {getattr(exc, 'message', str(exc))}")
        if problems:
            raise ConfigError(problems, source="prompts")

    async def check(self, refs: Mapping[str, str]) -> None:
        """Start-up: the files hold no changed used version, and each ``where: ref`` (e.g.
        ``apps.bot.prompt``) names a version that can be served now. Raises ConfigError with
        every problem."""
        changed = {c.ref: c for c in await self.changed_versions()}
        problems = [c.problem() for c in changed.values()]
        for where, ref in refs.items():
            try:
                # Not recorded as used: that happens when it first answers.
                version = await self.lookup(parse_ref(ref))
                if version.ref in changed:
                    problems.append(f"{where}: {changed[version.ref].problem()}")
            except (ValueError, NotFound, PromptUnavailable) as exc:
                problems.append(f"{where}: {getattr(exc, 'message', str(exc))}")
        if problems:
            raise ConfigError(list(dict.fromkeys(problems)), source="prompts")


def configured_refs(settings: Settings) -> dict[str, str]:
    """Every prompt the config names, by key: apps' and their variants'."""
    refs: dict[str, str] = {}
    for name, app in settings.apps.items():
        refs[f"apps.{name}.prompt"] = app.prompt
        for i, variant in enumerate(app.variants):
            if variant.prompt is not None:
                refs[f"apps.{name}.variants[{i}].prompt"] = variant.prompt
    return refs
