"""``/concepts`` routes of the search service: browse the concept graph behind the index.

* ``GET /concepts?q=&k=`` -> ``{query, total, concepts: [{id, name, score, aliases, description, documents}]}``
  (exact name or alias first, then prefix, word and description matches; a blank ``q`` lists the best concepts);
* ``GET /concepts/{id}`` -> the concept with ``neighbours`` by edge type (``{type: [{id, name, direction,
  weight, evidence}]}``) and ``document_list`` (``[{id, title, in_index}]``).

Both answer 404 ``{"error": "no_concept_graph"}`` when the index has no graph
(see :func:`fieldtune.search.concepts_view.locate_graph`), 503
``{"error": "concept_graph_unreadable"}`` naming a graph that cannot be read, and the second 404
``{"error": "unknown_concept"}`` for an id the graph lacks. They sit behind the
API key like every route but ``/health`` and the page. The catalog itself is
:mod:`fieldtune.search.concepts_view`; this module only speaks HTTP.
"""

from __future__ import annotations

from typing import Annotated, Any

from fieldtune.errors import FieldtuneError
from fieldtune.search.concepts_view import ConceptCatalog, UnknownConceptError
from fieldtune.search.index import Index
from fieldtune.search.options import MAX_K, UnknownDocumentError

try:
    from fastapi import APIRouter, Query, Request
    from fastapi.responses import JSONResponse
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("the search service needs FastAPI and uvicorn: pip install 'fieldtune[serve]'") from error

DEFAULT_CONCEPTS = 20

router = APIRouter()


def _index(request: Request) -> Index:
    return request.app.state.service.index


def _no_graph(index: Index) -> JSONResponse:
    return JSONResponse(
        {"error": "no_concept_graph",
         "message": f"the index at {index.root.name} has no concept graph: build it from a fieldtune build's "
                    "model, or copy the build's graph.json into the index directory"},
        status_code=404,
    )


def _catalog(index: Index) -> ConceptCatalog | JSONResponse:
    """The index's catalog, or the 404 (no graph) or 503 (a graph that cannot be read) to answer."""
    try:
        catalog = index.concepts()
    except FieldtuneError as error:
        return JSONResponse({"error": "concept_graph_unreadable", "message": str(error)}, status_code=503)
    return _no_graph(index) if catalog is None else catalog


def _title(index: Index, doc_id: str) -> str | None:
    try:
        document = index.document(doc_id)
    except UnknownDocumentError:
        return None
    return document.title or document.id


@router.get("/concepts", summary="Concepts of the graph matching a name", response_model=None)
def concepts(
    request: Request,
    q: Annotated[str, Query(description="Name, alias or words of a concept (blank: the best).")] = "",
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of concepts.")] = DEFAULT_CONCEPTS,
) -> dict[str, Any] | JSONResponse:
    catalog = _catalog(_index(request))
    if isinstance(catalog, JSONResponse):
        return catalog
    return {"query": q, "total": len(catalog), "concepts": catalog.find(q, limit=k)}


@router.get("/concepts/{concept_id:path}", summary="One concept: description, neighbours, documents",
            response_model=None)
def concept(request: Request, concept_id: str) -> dict[str, Any] | JSONResponse:
    index = _index(request)
    catalog = _catalog(index)
    if isinstance(catalog, JSONResponse):
        return catalog
    try:
        return catalog.concept(concept_id, title=lambda doc_id: _title(index, doc_id))
    except UnknownConceptError as error:
        return JSONResponse({"error": "unknown_concept", "message": str(error)}, status_code=404)
