"""Files and JSON records into ``SourceDocument``s: the first step of ingestion.

Loading never raises for bad input: every file (or JSONL line, or record) that cannot
become a document is a ``LoadFailure`` with a short reason, and the rest of the batch still
loads. Ids are stable across re-ingests, so loading the same tree again replaces documents
instead of duplicating them: a plain file's id is its path relative to the ingest root.

Supported: .txt, .md/.markdown, .html/.htm, .pdf, .json, .jsonl. Other files in a folder are
ignored, as are hidden files and folders.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from groundgate.retrieval.documents import LoadFailure, SourceDocument
from groundgate.retrieval.loaders_html import html_to_text
from groundgate.retrieval.loaders_records import (
    Loaded,
    parse_json,
    parse_jsonl,
    record_to_document,
)
from groundgate.retrieval.loaders_text import (
    Unloadable,
    decode_text,
    first_line_title,
    markdown_title,
    normalise_text,
    split_front_matter,
)

__all__ = ["SUPPORTED_SUFFIXES", "Loaded", "load_path", "load_records"]


def _document(
    text: str, rel: str, title: str, fmt: str, metadata: dict[str, Any] | None = None
) -> SourceDocument:
    if not text:
        raise Unloadable("empty document")
    return SourceDocument(
        id=rel, text=text, title=title, source=rel, metadata=metadata or {}, format=fmt
    )


def _stem(rel: str) -> str:
    return Path(rel).stem


def _load_text(data: bytes, rel: str) -> Loaded:
    text = normalise_text(decode_text(data))
    return [_document(text, rel, first_line_title(text, _stem(rel)), "text")], []


def _load_markdown(data: bytes, rel: str) -> Loaded:
    front, body = split_front_matter(decode_text(data))
    text = normalise_text(body, markdown=True)
    title = front.pop("title", "") or markdown_title(text) or first_line_title(text, _stem(rel))
    return [_document(text, rel, title, "markdown", dict(front))], []


def _load_html(data: bytes, rel: str) -> Loaded:
    title, body = html_to_text(decode_text(data))
    text = normalise_text(body, markdown=True)  # headings are now "#" lines
    return [_document(text, rel, title or first_line_title(text, _stem(rel)), "markdown")], []


def _load_pdf(data: bytes, rel: str) -> Loaded:
    from pypdf import PdfReader  # imported on first use: most ingests have no PDFs

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unloadable("encrypted PDF")
        pages = list(reader.pages)
        info = reader.metadata
        meta_title = info.title if info is not None else None
    except Unloadable:
        raise
    except Exception as exc:  # pypdf raises many types for broken files
        raise Unloadable(f"not a valid PDF: {exc}") from None
    texts: list[str] = []
    unreadable: list[int] = []
    for number, page in enumerate(pages, start=1):
        try:
            texts.append(page.extract_text() or "")
        except Exception:  # one broken page must not lose the other hundred
            unreadable.append(number)
    text = normalise_text("\n\n".join(texts))
    if not text:
        raise Unloadable("empty document (no extractable text; a scanned PDF?)")
    title = (meta_title or "").strip() if isinstance(meta_title, str) else ""
    metadata: dict[str, Any] = {"pages": len(pages)}
    if unreadable:
        metadata["unreadable_pages"] = unreadable
    title = title or first_line_title(text, _stem(rel))
    return [_document(text, rel, title, "text", metadata)], []


_Loader = Callable[[bytes, str], Loaded]
_LOADERS: dict[str, _Loader] = {
    ".txt": _load_text,
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".html": _load_html,
    ".htm": _load_html,
    ".pdf": _load_pdf,
    ".json": parse_json,
    ".jsonl": parse_jsonl,
}
SUPPORTED_SUFFIXES = frozenset(_LOADERS)


def _load_file(path: Path, rel: str) -> Loaded:
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        return [], [LoadFailure(rel, f"unsupported file type {path.suffix or '(none)'!r}")]
    try:
        data = path.read_bytes()
    except OSError as exc:
        return [], [LoadFailure(rel, f"cannot read: {exc.strerror or exc}")]
    try:
        return loader(data, rel)
    except Unloadable as exc:
        return [], [LoadFailure(rel, str(exc))]
    except Exception as exc:  # a parser bug on one odd file must not sink the batch
        return [], [LoadFailure(rel, f"cannot parse: {type(exc).__name__}: {exc}")]


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _walk(folder: Path, failures: list[LoadFailure], base: Path) -> list[Path]:
    """Supported, non-hidden files under ``folder``, sorted by relative path."""

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        failures.append(LoadFailure(_relative(where, base), f"cannot read folder: {exc.strerror}"))

    found: list[Path] = []
    # Symlinked folders are not followed: a link cycle would never end.
    for current, dirs, files in os.walk(folder, onerror=unreadable):
        dirs[:] = [d for d in dirs if not _hidden(d)]  # pruned folders are not descended
        found.extend(
            Path(current, name)
            for name in files
            if not _hidden(name) and Path(name).suffix.lower() in SUPPORTED_SUFFIXES
        )
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


def _relative(path: Path, base: Path) -> str:
    absolute, root = Path(os.path.abspath(path)), Path(os.path.abspath(base))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:  # outside the root: the absolute path is still stable
        return absolute.as_posix()


def _without_duplicates(docs: list[SourceDocument], failures: list[LoadFailure]) -> Loaded:
    """The first document with an id wins; a later one would silently replace it."""
    first: dict[str, SourceDocument] = {}
    kept: list[SourceDocument] = []
    for doc in docs:
        seen = first.setdefault(doc.id, doc)
        if seen is doc:
            kept.append(doc)
        else:
            where = seen.source or "an earlier record"
            failures.append(LoadFailure(doc.source or doc.id, f"duplicate id {doc.id!r} ({where})"))
    return kept, failures


def load_path(path: Path, *, root: Path | None = None) -> Loaded:
    """Documents from a file or a folder (recursively), and what could not be loaded.

    Ids and sources are paths relative to ``root``, which defaults to the folder itself (or a
    file's parent folder). Files load in sorted path order, so results are deterministic.
    """
    path = Path(path)
    failures: list[LoadFailure] = []
    if path.is_dir():
        base = Path(root) if root is not None else path
        files: Iterable[Path] = _walk(path, failures, base)
    elif path.exists():
        base = Path(root) if root is not None else path.parent
        files = [path]
    else:
        return [], [LoadFailure(str(path), "no such file or directory")]
    docs: list[SourceDocument] = []
    for file in files:
        loaded, failed = _load_file(file, _relative(file, base))
        docs.extend(loaded)
        failures.extend(failed)
    return _without_duplicates(docs, failures)


def _content_id(text: str) -> str:
    return "doc-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def load_records(records: Iterable[object], *, source: str = "") -> Loaded:
    """Documents from JSON records an API caller sent, validated like .jsonl lines.

    A record without an id gets one from a hash of its text, so sending the same document
    twice replaces it rather than duplicating it. Failures are named ``records[i]``.
    """
    docs: list[SourceDocument] = []
    failures: list[LoadFailure] = []
    for index, record in enumerate(records):
        try:
            doc = record_to_document(record, default_id="", default_source=source)
        except Unloadable as exc:
            failures.append(LoadFailure(f"{source or 'records'}[{index}]", str(exc)))
            continue
        doc.id = doc.id or _content_id(doc.text)
        docs.append(doc)
    return _without_duplicates(docs, failures)
