"""JSON documents: one record is ``{"text": ..., "id"?, "title"?, "metadata"?, ...}``.

The same validation serves .json files, .jsonl lines (BEIR ``corpus.jsonl`` included: its
``_id`` is the id) and documents that API callers send.
"""

from __future__ import annotations

import json
from typing import Any

from groundgate.retrieval.documents import LoadFailure, SourceDocument
from groundgate.retrieval.loaders_text import Unloadable, decode_text, normalise_text

Loaded = tuple[list[SourceDocument], list[LoadFailure]]

FORMATS = ("text", "markdown")
# Fields with a meaning of their own; every other field of a record becomes metadata.
_RESERVED = frozenset({"id", "_id", "text", "title", "metadata", "source", "format"})


def _record_id(record: dict[str, Any]) -> str | None:
    for key in ("id", "_id"):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise Unloadable(f'"{key}" must be a string or an integer')
        text = str(value).strip()
        if not text:
            raise Unloadable(f'"{key}" is empty')
        return text
    return None


def _optional_str(record: dict[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is None or isinstance(value, str):
        return value
    raise Unloadable(f'"{key}" must be a string')


def record_to_document(record: object, *, default_id: str, default_source: str) -> SourceDocument:
    """One validated document from a decoded JSON value; raises ``Unloadable`` with a reason."""
    if not isinstance(record, dict):
        raise Unloadable("not a JSON object")
    if "text" not in record or record["text"] is None:
        raise Unloadable('missing "text"')
    raw_text = record["text"]
    if not isinstance(raw_text, str):
        raise Unloadable('"text" must be a string')
    fmt = _optional_str(record, "format") or "text"
    if fmt not in FORMATS:
        raise Unloadable(f'"format" must be one of {", ".join(FORMATS)}')
    text = normalise_text(raw_text, markdown=fmt == "markdown")
    if not text:
        raise Unloadable("empty document")
    metadata = record.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise Unloadable('"metadata" must be an object')
    merged = {key: value for key, value in record.items() if key not in _RESERVED}
    merged.update(metadata or {})  # an explicit metadata object wins over loose fields
    return SourceDocument(
        id=_record_id(record) or default_id,
        text=text,
        title=(_optional_str(record, "title") or "").strip(),
        source=_optional_str(record, "source") or default_source,
        metadata=merged,
        format=fmt,
    )


def parse_json(data: bytes, rel: str) -> Loaded:
    """A .json file: one record (its id defaults to the path) or a list of records."""
    try:
        value = json.loads(decode_text(data))
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise Unloadable(f"invalid JSON: {exc.msg} ({where})") from None
    if isinstance(value, dict):
        return [record_to_document(value, default_id=rel, default_source=rel)], []
    if not isinstance(value, list):
        raise Unloadable("expected a JSON object or a list of objects")
    if not value:
        raise Unloadable("no records")
    docs: list[SourceDocument] = []
    failures: list[LoadFailure] = []
    for index, item in enumerate(value):
        try:
            docs.append(record_to_document(item, default_id=f"{rel}#{index}", default_source=rel))
        except Unloadable as exc:
            failures.append(LoadFailure(f"{rel}[{index}]", str(exc)))
    return docs, failures


def parse_jsonl(data: bytes, rel: str) -> Loaded:
    """A .jsonl file, one record per line; a bad line fails alone, named ``path:line``."""
    docs: list[SourceDocument] = []
    failures: list[LoadFailure] = []
    for number, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):
        if not raw.strip():
            continue  # blank lines (a trailing newline, say) are not records
        try:
            try:
                value = json.loads(decode_text(raw))
            except json.JSONDecodeError as exc:
                raise Unloadable(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
            docs.append(record_to_document(value, default_id=f"{rel}#{number}", default_source=rel))
        except Unloadable as exc:
            failures.append(LoadFailure(f"{rel}:{number}", str(exc)))
    if not docs and not failures:
        raise Unloadable("no records")
    return docs, failures
