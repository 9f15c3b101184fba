"""Knowledge-base persistence: documents, chunks, keyword and dense indexes, and the
embedding cache, behind one protocol that SQLite and PostgreSQL both implement.

Every method takes the tenant, so a query can never cross tenants by omission. Changing a
knowledge base (replacing or deleting a document) bumps its ``version`` in the same
transaction, which caches and in-process indexes use to know they are stale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from groundgate.errors import InvalidRequest

Vector = NDArray[np.float32]

# Filters are {"key": value} or {"key": {"$in": [v1, v2]}} on document metadata; "doc_id"
# and "source" address the document itself. Keys become JSON paths, so they are checked.
FILTER_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
FilterValue = str | int | float | bool
Filters = dict[str, Any]


@dataclass(slots=True)
class KnowledgeBase:
    tenant: str
    name: str
    created_at: float
    version: int
    documents: int = 0
    chunks: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class DocumentRecord:
    id: str
    content_hash: str
    source: str = ""
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    chunk_count: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(slots=True)
class ChunkRecord:
    """A chunk as written: its text, where it sits, and (optionally) its dense vector."""

    id: str
    position: int
    text: str
    heading_path: list[str] = field(default_factory=list)
    token_count: int = 0
    embedding: Vector | None = None


@dataclass(slots=True)
class StoredChunk:
    """A chunk as read back, with what a citation needs from its document."""

    id: str
    doc_id: str
    position: int
    text: str
    title: str
    source: str
    heading_path: list[str]
    metadata: dict[str, Any]
    token_count: int = 0


@dataclass(slots=True)
class Hit:
    chunk_id: str
    score: float


class KnowledgeStore(Protocol):
    async def ensure_kb(
        self, tenant: str, name: str, settings: dict[str, Any] | None = None
    ) -> KnowledgeBase: ...

    async def get_kb(self, tenant: str, name: str) -> KnowledgeBase | None: ...

    async def list_kbs(self, tenant: str) -> list[KnowledgeBase]: ...

    async def kb_version(self, tenant: str, name: str) -> str | None:
        """A token that changes with every change to the knowledge base's documents and never
        repeats, not even for a knowledge base deleted and created again (it includes the
        creation time); None if there is no such knowledge base. One indexed read: cached
        answers are keyed by it."""
        ...

    async def delete_kb(self, tenant: str, name: str) -> bool: ...

    async def get_document(self, tenant: str, kb: str, doc_id: str) -> DocumentRecord | None: ...

    async def list_documents(
        self, tenant: str, kb: str, *, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]: ...

    async def document_hashes(self, tenant: str, kb: str, ids: list[str]) -> dict[str, str]: ...

    async def replace_document(
        self, tenant: str, kb: str, doc: DocumentRecord, chunks: list[ChunkRecord]
    ) -> int:
        """Atomically replace the document and all its chunks; returns the new kb version."""
        ...

    async def delete_document(self, tenant: str, kb: str, doc_id: str) -> bool: ...

    async def keyword_search(
        self, tenant: str, kb: str, query: str, *, limit: int, filters: Filters | None = None
    ) -> list[Hit]: ...

    async def dense_search(
        self, tenant: str, kb: str, vector: Vector, *, limit: int, filters: Filters | None = None
    ) -> list[Hit]: ...

    async def get_chunks(self, tenant: str, kb: str, ids: list[str]) -> list[StoredChunk]: ...

    async def get_embeddings(self, model: str, hashes: list[str]) -> dict[str, Vector]: ...

    async def put_embeddings(
        self, model: str, vectors: dict[str, Vector], *, questions: bool = False
    ) -> None:
        """Cache vectors by content hash (the first write of a hash wins), stamped with the
        time; ``questions``: they are question vectors, which retention keeps for less time
        than documents' (``store/retention.py``)."""
        ...


def check_filters(filters: Filters | None) -> list[tuple[str, list[FilterValue]]]:
    """Validate filters into (key, allowed values) pairs; raises InvalidRequest."""
    if not filters:
        return []
    if not isinstance(filters, dict):
        raise InvalidRequest("'filters' must be an object.", param="filters")
    checked = []
    for key, value in filters.items():
        if not isinstance(key, str) or not FILTER_KEY.match(key):
            raise InvalidRequest(f"Invalid filter key {key!r}.", param="filters")
        if isinstance(value, dict):
            if set(value) != {"$in"} or not isinstance(value["$in"], list) or not value["$in"]:
                raise InvalidRequest(
                    f'Filter {key!r}: use a value or {{"$in": [...]}}.', param="filters"
                )
            values = value["$in"]
        else:
            values = [value]
        for v in values:
            if not isinstance(v, (str, int, float, bool)):
                raise InvalidRequest(
                    f"Filter {key!r}: values must be strings, numbers or booleans.", param="filters"
                )
        checked.append((key, list(values)))
    return checked


def narrow_filters(floor: Filters, requested: Filters | None) -> Filters:
    """``requested`` applied within ``floor`` (an app's filters): a document must satisfy both.

    Keys combine with AND, so a key only one side names is simply added. A key both name keeps
    the floor's values that the request also allows; none left is an InvalidRequest (an empty
    ``$in`` is not in the filter language). So a request can narrow the floor, never widen it.
    """
    if not requested:
        return dict(floor)
    floor_values = dict(check_filters(floor))
    merged: Filters = dict(floor)
    for key, values in check_filters(requested):
        if key not in floor_values:
            merged[key] = requested[key]
            continue
        allowed = {_comparable(key, v) for v in values}
        kept = [v for v in floor_values[key] if _comparable(key, v) in allowed]
        if not kept:
            raise InvalidRequest(
                f"Filter {key!r}: none of its values is allowed here.", param="filters"
            )
        merged[key] = kept[0] if len(kept) == 1 else {"$in": kept}
    return merged


def _comparable(key: str, value: FilterValue) -> tuple[str, FilterValue]:
    """A value as the stores compare it, or stricter: document fields compare as text; in
    metadata, true is not 1 (PostgreSQL's jsonb) but 1 is 1.0."""
    if key in ("doc_id", "source"):
        return "text", str(int(value) if isinstance(value, bool) else value)
    return ("bool" if isinstance(value, bool) else "value"), value


# Words that carry no retrieval signal; dropped from keyword queries (FTS5 ORs the rest).
STOPWORDS = frozenset(
    (
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    )
)
_WORD = re.compile(r"\w+", re.UNICODE)


def keyword_terms(query: str, limit: int = 32) -> list[str]:
    """Distinct lower-cased content words of a query, in order, at most ``limit``."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        if word not in STOPWORDS and word not in seen:
            seen[word] = None
    terms = list(seen)
    return terms[:limit] if terms else _WORD.findall(query.lower())[:limit]
