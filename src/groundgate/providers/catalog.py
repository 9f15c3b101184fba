"""What clients may name in ``model``: chat models and embedders, each an ordered list of
deployments bound to live provider objects."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from groundgate.config import Settings, split_deployment
from groundgate.errors import InvalidRequest, ModelNotFound
from groundgate.providers.base import ManagedProvider

Kind = Literal["chat", "embedding"]


@dataclass(frozen=True, slots=True)
class Deployment:
    id: str  # "provider:upstream-model"
    provider: ManagedProvider
    upstream_model: str


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    name: str
    kind: Kind
    deployments: tuple[Deployment, ...]
    description: str = ""


class Catalog:
    def __init__(self, settings: Settings, providers: dict[str, ManagedProvider]) -> None:
        self.created = int(time.time())
        self._entries: dict[str, CatalogEntry] = {}
        tables: tuple[tuple[Kind, dict[str, Any]], ...] = (
            ("chat", settings.models),
            ("embedding", settings.embedders),
        )
        for kind, table in tables:
            for name, cfg in table.items():
                deployments = []
                for dep in cfg.deployments:
                    provider_name, upstream = split_deployment(dep)
                    deployments.append(Deployment(dep, providers[provider_name], upstream))
                self._entries[name] = CatalogEntry(
                    name,
                    kind,
                    tuple(deployments),
                    cfg.description,
                )

    def entries(self) -> list[CatalogEntry]:
        return list(self._entries.values())

    def get(self, name: str, kind: Kind) -> CatalogEntry:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(e.name for e in self._entries.values() if e.kind == kind))
            raise ModelNotFound(
                f"The model '{name}' does not exist. Available: {known or 'none'}.",
                param="model",
            )
        if entry.kind != kind:
            other = "/v1/embeddings" if entry.kind == "embedding" else "/v1/chat/completions"
            raise InvalidRequest(
                f"The model '{name}' is an {entry.kind} model; call it on {other}.",
                param="model",
                code="wrong_model_kind",
            )
        return entry
