"""Knowledge bases and their documents: list, ingest (JSON or file upload), read, delete."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile

from groundgate.api.body import read_json_object
from groundgate.api.upload_names import upload_names
from groundgate.container import Container
from groundgate.errors import InvalidRequest, NotFound
from groundgate.retrieval.documents import LoadFailure, SourceDocument, check_kb_name
from groundgate.retrieval.loaders import SUPPORTED_SUFFIXES, load_path, load_records
from groundgate.store.knowledge import DocumentRecord, KnowledgeBase

router = APIRouter(tags=["knowledge bases"])

MAX_DOCUMENTS = 1000
MAX_FILES = 100
MAX_OFFSET = 2**63 - 1
# The body add_documents parses by hand, for OpenAPI; records are checked one by one (a bad
# record is a failure in the result, not a 400), so the schema is as loose as the parser.
_DOCUMENT = {
    "type": "object",
    "required": ["text"],
    "properties": {
        "id": {"type": ["string", "integer"]},
        "text": {"type": "string"},
        "title": {"type": "string"},
        "source": {"type": "string"},
        "metadata": {"type": "object"},
        "format": {"enum": ["text", "markdown"]},
    },
}
_INGEST_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["documents"],
                    "properties": {
                        "documents": {
                            "type": "array",
                            "items": _DOCUMENT,
                            "minItems": 1,
                            "maxItems": MAX_DOCUMENTS,
                        }
                    },
                }
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "maxItems": MAX_FILES,
                        }
                    },
                }
            },
        },
    }
}


def _tenant(request: Request) -> str:
    return str(getattr(request.state, "tenant", "default"))


def _kb(kb: KnowledgeBase, runtime: Container) -> dict[str, Any]:
    config = runtime.settings.kb_config(kb.name)
    return {
        "object": "knowledge_base",
        "name": kb.name,
        "documents": kb.documents,
        "chunks": kb.chunks,
        "version": kb.version,
        "created_at": kb.created_at,
        "mode": config.mode,
        "embedder": config.embedder,
    }


def _document(doc: DocumentRecord) -> dict[str, Any]:
    return {
        "object": "document",
        "id": doc.id,
        "source": doc.source,
        "title": doc.title,
        "metadata": doc.metadata,
        "chunks": doc.chunk_count,
        "content_hash": doc.content_hash,
        "created_at": doc.created_at,
        "updated_at": doc.updated_at,
    }


@router.get("/v1/knowledge-bases")
async def list_knowledge_bases(request: Request) -> dict[str, Any]:
    runtime: Container = request.app.state.runtime
    kbs = await runtime.store.knowledge.list_kbs(_tenant(request))
    return {"object": "list", "data": [_kb(kb, runtime) for kb in kbs]}


@router.get("/v1/knowledge-bases/{kb}")
async def get_knowledge_base(kb: str, request: Request) -> dict[str, Any]:
    runtime: Container = request.app.state.runtime
    found = await runtime.store.knowledge.get_kb(_tenant(request), check_kb_name(kb))
    if found is None:
        raise NotFound(f"No knowledge base named '{kb}'.", param="kb")
    return _kb(found, runtime)


@router.delete("/v1/knowledge-bases/{kb}")
async def delete_knowledge_base(kb: str, request: Request) -> dict[str, Any]:
    runtime: Container = request.app.state.runtime
    if not await runtime.store.knowledge.delete_kb(_tenant(request), check_kb_name(kb)):
        raise NotFound(f"No knowledge base named '{kb}'.", param="kb")
    await runtime.knowledge_changed(_tenant(request), kb)
    return {"object": "knowledge_base.deleted", "name": kb, "deleted": True}


@router.post("/v1/knowledge-bases/{kb}/documents", openapi_extra=_INGEST_SCHEMA)
async def add_documents(kb: str, request: Request) -> dict[str, Any]:
    """JSON ``{"documents": [{"id"?, "text", "title"?, "source"?, "metadata"?}, ...]}``, or a
    multipart upload of files (field ``files``) in any supported format."""
    runtime: Container = request.app.state.runtime
    check_kb_name(kb)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        docs, failures = await _uploaded(request)
    else:
        data = await read_json_object(request)
        records = data.get("documents")
        if not isinstance(records, list) or not records:
            raise InvalidRequest("'documents' must be a non-empty list.", param="documents")
        if len(records) > MAX_DOCUMENTS:
            raise InvalidRequest(
                f"At most {MAX_DOCUMENTS} documents per request.", param="documents"
            )
        # Normalising the texts takes time that grows with them: off the event loop.
        docs, failures = await asyncio.to_thread(load_records, records, source="api")
    results = await runtime.ingestor(kb).ingest(_tenant(request), kb, docs)
    if any(r.status not in ("unchanged", "failed") for r in results):
        await runtime.knowledge_changed(_tenant(request), kb)
    return {
        "object": "ingest.result",
        "knowledge_base": kb,
        "documents": [
            {
                "id": r.doc_id,
                "status": r.status,
                "chunks": r.chunks,
                **({"error": r.error} if r.error else {}),
            }
            for r in results
        ],
        "failures": [{"source": f.path, "error": f.reason} for f in failures],
    }


async def _uploaded(request: Request) -> tuple[list[SourceDocument], list[LoadFailure]]:
    form = await request.form(max_files=MAX_FILES)
    uploads = [v for v in form.getlist("files") if isinstance(v, UploadFile)]
    if not uploads:
        raise InvalidRequest("Upload one or more files in the 'files' field.", param="files")
    names = upload_names([upload.filename for upload in uploads])  # 400s before any write
    docs: list[SourceDocument] = []
    failures: list[LoadFailure] = []
    with tempfile.TemporaryDirectory(prefix="groundgate-upload-") as tmp:
        root = Path(tmp)
        for upload, name in zip(uploads, names, strict=True):
            if Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                failures.append(LoadFailure(name, "unsupported file type"))
                continue
            (root / name).write_bytes(await upload.read())
            # Parsing (PDF, HTML) takes time that grows with the file: off the event loop.
            loaded, failed = await asyncio.to_thread(load_path, root / name, root=root)
            docs.extend(loaded)
            failures.extend(failed)
    return docs, failures


@router.get("/v1/knowledge-bases/{kb}/documents")
async def list_documents(
    kb: str, request: Request, limit: int = 100, offset: int = 0
) -> dict[str, Any]:
    runtime: Container = request.app.state.runtime
    tenant = _tenant(request)
    if await runtime.store.knowledge.get_kb(tenant, check_kb_name(kb)) is None:
        raise NotFound(f"No knowledge base named '{kb}'.", param="kb")
    limit = max(1, min(limit, 1000))
    # Past the end is an empty page; past a 64-bit integer the database cannot even bind it.
    offset = max(0, min(offset, MAX_OFFSET))
    docs = await runtime.store.knowledge.list_documents(tenant, kb, limit=limit, offset=offset)
    return {"object": "list", "data": [_document(d) for d in docs]}


@router.get("/v1/knowledge-bases/{kb}/documents/{doc_id:path}")
async def get_document(kb: str, doc_id: str, request: Request) -> dict[str, Any]:
    runtime: Container = request.app.state.runtime
    doc = await runtime.store.knowledge.get_document(_tenant(request), check_kb_name(kb), doc_id)
    if doc is None:
        raise NotFound(f"No document '{doc_id}' in knowledge base '{kb}'.", param="doc_id")
    return _document(doc)


@router.delete("/v1/knowledge-bases/{kb}/documents/{doc_id:path}")
async def delete_document(kb: str, doc_id: str, request: Request) -> dict[str, Any]:
    runtime: Container = request.app.state.runtime
    deleted = await runtime.store.knowledge.delete_document(
        _tenant(request), check_kb_name(kb), doc_id
    )
    if not deleted:
        raise NotFound(f"No document '{doc_id}' in knowledge base '{kb}'.", param="doc_id")
    await runtime.knowledge_changed(_tenant(request), kb)
    return {"object": "document.deleted", "id": doc_id, "deleted": True}
