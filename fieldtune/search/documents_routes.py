"""Write routes of the search service: add and delete documents over HTTP (txtai's API does the same).

* ``POST /documents`` with a JSON array of records, each as a line of a JSONL corpus (``id`` or ``_id``,
  ``text``, ``title``, ``metadata``; other keys become metadata) -> ``{added, ids, documents, generation}``:
  the documents are chunked and encoded with the index's model, and a record whose id is indexed
  replaces that document;
* ``DELETE /documents/{id}`` -> ``{deleted: 1, ids, documents, generation}`` (404 for an unknown id);
* ``POST /documents/delete`` with ``{"ids": [...]}`` -> ``{deleted, ids, missing, documents, generation}``.

``documents`` is the number of live documents afterwards. Writes go through :meth:`Index.add` /
:meth:`Index.delete`, which publish a new generation atomically: a search running meanwhile sees the
index before or after the whole request, never half of it (with a pgvector store too: each update is one
transaction). A server started without an API key answers every write 403 (``writes_disabled``): anyone
who can reach it could otherwise rewrite the index. With a key, a request without it is answered 401 by
the key guard (:mod:`fieldtune.search.guards`) before it gets here. A body that is not JSON is 400; a
record that cannot become a document is 422 ``invalid_document`` naming it (``item 3``), and nothing is
added; more than :data:`MAX_DOCUMENTS_PER_REQUEST` records or :data:`MAX_BODY_BYTES` bytes is 413.
"""

from __future__ import annotations

import json
from typing import Any

from fieldtune.errors import InputError
from fieldtune.ingest.common import RecordProblem
from fieldtune.ingest.jsonl import document_from_json
from fieldtune.search.index import Index
from fieldtune.search.options import UnknownDocumentError
from fieldtune.types import Document

try:
    from fastapi import APIRouter, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("the search service needs FastAPI and uvicorn: pip install 'fieldtune[serve]'") from error

#: Records one ``POST /documents`` may carry (send more in several requests: each is encoded whole).
MAX_DOCUMENTS_PER_REQUEST = 1000
#: Bytes a write request's body may have (read no further: the server holds the body in memory).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Where a record of ``POST /documents`` came from, for errors and ``Document.source``.
ADD_SOURCE = "POST /documents"

#: The request bodies, for ``/openapi.json`` (the routes read the body themselves, to name a bad record).
_RECORD = {
    "type": "object",
    "properties": {"id": {"type": "string"}, "title": {"type": "string"}, "text": {"type": "string"},
                   "metadata": {"type": "object"}},
    "required": ["id"],
    "additionalProperties": True,
}
_ADD_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "array", "items": _RECORD, "maxItems": MAX_DOCUMENTS_PER_REQUEST}}}}}
_DELETE_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
               "required": ["ids"]}}}}}

router = APIRouter()


class WriteRefused(Exception):
    """A write request answered with an error: its HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error": self.code, "message": str(self), **self.extra}, status_code=self.status)


def _index_for_writing(request: Request) -> Index:
    """The served index, or 403 when the server has no API key (writes would be open to anyone)."""
    service = request.app.state.service
    if service.api_key is None:
        raise WriteRefused(
            403, "writes_disabled",
            "this server has no API key, so it does not accept changes: restart it with one "
            "(fieldtune serve --api-key-file FILE, or FIELDTUNE_API_KEY) and send it as header X-API-Key",
        )
    return service.index


async def _json_body(request: Request) -> Any:
    """The request body as JSON: 413 above :data:`MAX_BODY_BYTES`, 400 when it does not parse."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise WriteRefused(413, "body_too_large", f"the body has {declared} bytes; send at most {MAX_BODY_BYTES}")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > MAX_BODY_BYTES:
            raise WriteRefused(413, "body_too_large", f"the body is over {MAX_BODY_BYTES} bytes; send less at once")
    try:
        return json.loads(body)
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        raise WriteRefused(400, "invalid_json", f"the body is not JSON ({error})") from error


def parse_documents(body: Any) -> list[Document]:
    """The documents of a ``POST /documents`` body, or a :class:`WriteRefused` naming the bad record."""
    if not isinstance(body, list):
        raise WriteRefused(422, "invalid_document", f"send a JSON array of documents, not {type(body).__name__}")
    if len(body) > MAX_DOCUMENTS_PER_REQUEST:
        raise WriteRefused(
            413, "too_many_documents",
            f"{len(body)} documents in one request; send at most {MAX_DOCUMENTS_PER_REQUEST} at a time",
        )
    documents = []
    for number, record in enumerate(body, 1):
        try:
            documents.append(document_from_json(record, source=f"{ADD_SOURCE}, item {number}"))
        except RecordProblem as error:  # EmptyRecord too: a document with no text cannot be searched
            raise WriteRefused(
                422, "invalid_document", f"item {number}: {error}", record=f"item {number}"
            ) from error
    return documents


def _counts(index: Index) -> dict[str, int]:
    manifest = index.manifest
    return {"documents": manifest.counts.documents, "generation": manifest.generation}


@router.post("/documents", summary="Add documents (or replace those with the same id); needs the API key",
             response_model=None, openapi_extra=_ADD_BODY)
async def add_documents(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        index = _index_for_writing(request)
        documents = parse_documents(await _json_body(request))
    except WriteRefused as refusal:
        return refusal.response()
    try:
        added = await run_in_threadpool(index.add, documents)  # encodes: not on the event loop
    except InputError as error:  # a duplicate id in the request (Index.add names the item)
        return WriteRefused(422, "invalid_document", str(error), record=error.record).response()
    return {"added": added, "ids": [doc.id for doc in documents], **_counts(index)}


@router.post("/documents/delete", summary="Delete documents by id; needs the API key", response_model=None,
             openapi_extra=_DELETE_BODY)
async def delete_documents(request: Request) -> dict[str, Any] | JSONResponse:
    try:
        index = _index_for_writing(request)
        body = await _json_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(doc_id, str) for doc_id in ids):
            raise WriteRefused(422, "invalid_ids", 'send {"ids": [...]} with the document ids as strings')
    except WriteRefused as refusal:
        return refusal.response()
    ids = list(dict.fromkeys(ids))
    present = await run_in_threadpool(_present, index, ids)
    deleted = await run_in_threadpool(index.delete, present)
    return {"deleted": deleted, "ids": present, "missing": [d for d in ids if d not in present], **_counts(index)}


@router.delete("/documents/{doc_id:path}", summary="Delete one document; needs the API key", response_model=None)
def delete_document(request: Request, doc_id: str) -> dict[str, Any] | JSONResponse:
    try:
        index = _index_for_writing(request)
    except WriteRefused as refusal:
        return refusal.response()
    if index.delete([doc_id]) == 0:
        raise UnknownDocumentError(f"no document {doc_id!r} in the index")  # the service's 404
    return {"deleted": 1, "ids": [doc_id], **_counts(index)}


def _present(index: Index, ids: list[str]) -> list[str]:
    """The ids the index holds now (a concurrent delete may still take one first: it is then not counted)."""
    found = []
    for doc_id in ids:
        try:
            index.document(doc_id)
        except UnknownDocumentError:
            continue
        found.append(doc_id)
    return found
