"""The types ingestion passes around: a loaded document, a chunk before it is stored, a file
that could not be loaded, and the per-knowledge-base chunking settings; and what a knowledge
base may be called."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from groundgate.errors import InvalidRequest

KB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_kb_name(kb: str) -> str:
    """``kb`` if it is a valid knowledge base name, else ``InvalidRequest`` (param ``kb``)."""
    if not KB_NAME.fullmatch(kb):
        raise InvalidRequest(
            "Knowledge base names are 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit.",
            param="kb",
        )
    return kb


@dataclass(slots=True)
class SourceDocument:
    """One document as loaded, before chunking."""

    # Stable across re-ingests: caller-given, the BEIR ``_id``, or the path relative to the
    # ingest root. Re-ingesting the same file replaces the same document.
    id: str
    # Normalised text. Markdown keeps its "# ..." heading lines so the chunker sees structure;
    # HTML headings are converted to markdown headings.
    text: str
    title: str = ""
    source: str = ""  # path relative to the ingest root, or what the caller said
    metadata: dict[str, Any] = field(default_factory=dict)
    format: str = "text"  # "text" | "markdown" (headings are meaningful)


@dataclass(slots=True)
class ChunkDraft:
    """A chunk of one document, before it is embedded or stored."""

    position: int  # 0-based order within the document
    text: str  # the chunk text, without any title or heading prefix
    heading_path: list[str]  # e.g. ["Install", "From source"]
    token_count: int
    start_char: int  # offsets into the document text: doc.text[start_char:end_char]
    end_char: int


@dataclass(slots=True)
class LoadFailure:
    """A file (or JSONL line) that could not be loaded; the rest of the batch still loads."""

    path: str
    reason: str  # short and human, e.g. "not a valid PDF: EOF marker not found"


@dataclass(slots=True)
class ChunkingConfig:
    """Chunk sizes for one knowledge base, in tokens of the embedder's tokenizer."""

    target_tokens: int = 200
    max_tokens: int = 256  # hard cap: the MiniLM embedder truncates at 256 wordpieces
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.target_tokens <= self.max_tokens:
            raise ValueError("chunking needs 1 <= target_tokens <= max_tokens")
        if not 0 <= self.overlap_tokens < self.max_tokens:
            raise ValueError("chunking needs 0 <= overlap_tokens < max_tokens")
