"""Search over HTTP: a FastAPI app around one opened :class:`~fieldtune.search.Index`.

Routes (see ``/openapi.json``; ``/docs`` renders it):

* ``GET /search?q=&k=&mode=&dim=&chunks=&filter=`` -> ``{query, mode, dim, k, took_ms, results}``
  (``filter=year>=2020``, repeatable: metadata filters applied before ranking, 400 if bad);
* ``GET /documents/{id}`` -> ``{id, title, text, metadata}`` (404 for an unknown id);
* ``POST /documents``, ``DELETE /documents/{id}``, ``POST /documents/delete`` -> add and delete documents,
  only on a server with an API key (403 without one; :mod:`fieldtune.search.documents_routes`);
* ``GET /concepts?q=&k=`` and ``GET /concepts/{id}`` -> the concept graph behind the index
  (:mod:`fieldtune.search.concepts_routes`; 404 when it has none);
* ``GET /health`` -> ``{status, auth_required, defaults, limits, index: Index.info()}``
  (with an API key and a request without it: ``{status, auth_required}`` only, so
  the paths of the corpus, the model and the index stay behind the key);
* ``GET /`` and ``/static/...`` -> the search page (plain HTML, JavaScript and CSS).

With an API key, every request except ``/health``, the page and its assets must
carry it as header ``X-API-Key`` or as ``?api_key=``; otherwise 401. A request
whose ``Host`` is not one of the allowed names is answered 421 (DNS rebinding),
and one whose URL is over the limit 414 (see :mod:`fieldtune.search.guards`).

Every error is JSON ``{"error": code, "message": text}``, plus ``parameter``
and ``allowed`` when one query parameter is at fault: 422 for a bad parameter,
400 for any other :class:`SearchOptionError`, 503 when a pgvector index's database
fails (:class:`~fieldtune.search.pgsql.StoreError`), 404 for an unknown document or
route, 401 for a missing or wrong key, 414 and 421 as above, and 500 (without a traceback; it is
logged) for anything unexpected.

Concurrency: the endpoints are plain ``def`` functions, so Starlette runs them
in its threadpool. The app holds the one ``Index`` it was given and caches
no results: the index swaps generations atomically and serialises the model's
encode call itself (queries waiting for it are encoded in one batch; recent query
vectors are kept in an LRU, :mod:`fieldtune.search.query_cache`), so a search sees
the index before or after an update. ``fieldtune serve`` warms the index up
(:meth:`Index.warm_up`) before it answers.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fieldtune.search.concepts_routes import router as concepts_router
from fieldtune.search.documents_routes import router as documents_router
from fieldtune.search.guards import (
    LOOPBACK_HOSTS,
    ApiKeyMiddleware,
    HostGuard,
    UrlLengthGuard,
    h11_limit,
    max_url_bytes,
    request_has_key,
)
from fieldtune.search.index import Index
from fieldtune.search.options import MAX_K, SearchMode, SearchOptionError, UnknownDocumentError
from fieldtune.search.pgsql import StoreError
from fieldtune.search.query_log import QueryLog

try:
    from fastapi import APIRouter, Depends, FastAPI, Query, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the search service needs FastAPI and uvicorn: pip install 'fieldtune[serve]'"
    ) from error

logger = logging.getLogger("fieldtune.search.service")

STATIC = Path(__file__).with_name("static")
DEFAULT_MODE = SearchMode.HYBRID
DEFAULT_K = 10
MAX_QUERY_CHARS = 1000
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class ParameterError(ValueError):
    """A query parameter outside its allowed values (turned into a 422 naming them)."""

    def __init__(self, parameter: str, message: str, allowed: Any) -> None:
        super().__init__(message)
        self.parameter, self.allowed = parameter, allowed


@dataclass(frozen=True)
class Service:
    """What the routes share: the one index, and the limits it is served with."""

    index: Index
    api_key: str | None
    max_query_chars: int
    query_log: QueryLog | None = None

    @property
    def key_bytes(self) -> bytes:
        """The API key as the guards compare it (empty when none is set)."""
        return (self.api_key or "").encode("utf-8")

    def allowed(self, parameter: str) -> Any:
        """What ``parameter`` accepts, for error bodies (dims come from the live index)."""
        return {
            "q": f"a non-blank string of at most {self.max_query_chars} characters",
            "k": f"an integer from 1 to {MAX_K}",
            "mode": self.index.modes,
            "dim": self.index.dims,
            "chunks": "true or false",
        }.get(parameter)


def create_app(
    index: Index,
    *,
    api_key: str | None = None,
    max_query_chars: int = MAX_QUERY_CHARS,
    allowed_hosts: Iterable[str] = LOOPBACK_HOSTS,
    query_log: QueryLog | None = None,
) -> FastAPI:
    """The search app over ``index``; ``api_key`` (if set) guards all but health and the page.

    ``allowed_hosts`` are the ``Host`` names it answers for (``"*"``: any); the default
    suits a server bound to loopback, and ``fieldtune serve`` adds its ``--host`` and
    ``--allow-host`` names (:func:`fieldtune.search.guards.allowed_hosts`). ``query_log``
    (``serve --log-queries``) records every query searched (:mod:`fieldtune.search.query_log`).
    """
    if max_query_chars < 1:
        raise SearchOptionError(f"max_query_chars must be at least 1 (got {max_query_chars})")
    app = FastAPI(
        title="fieldtune search",
        summary="Dense, BM25 and hybrid search over a fieldtune index.",
        version=_version(),
        docs_url=None,  # served below, so that the page can pass ?api_key= on to the schema
        redoc_url=None,
    )
    app.state.service = Service(index, api_key or None, max_query_chars, query_log)
    app.include_router(router)
    app.include_router(concepts_router)
    app.include_router(documents_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_error_handlers(app)
    # Starlette runs the middleware added last first: URL length, then Host, then the key.
    if api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    app.add_middleware(HostGuard, hosts=tuple(allowed_hosts))
    app.add_middleware(UrlLengthGuard, max_bytes=max_url_bytes(max_query_chars))
    return app


def server_options(app: FastAPI) -> dict[str, Any]:
    """uvicorn settings the app's limits need: room for a long URL to reach the 414 answer.

    The h11 parser always: uvicorn picks httptools when it is installed (``uvicorn[standard]``),
    which answers a 200 KB URL 400 itself, and measured no faster here (45 vs 43-48 requests/s
    at 20 clients, ``benchmarks/results/search_latency.md``).
    """
    return {"http": "h11", "h11_max_incomplete_event_size": h11_limit(app.state.service.max_query_chars)}


def _version() -> str:
    from fieldtune.version import __version__

    return __version__


async def get_service(request: Request) -> Service:
    """The app's :class:`Service` (``async``: FastAPI would run a plain function in its threadpool)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
router = APIRouter()


@router.get("/search", summary="Ranked documents (or chunks) for a query")
def search(
    service: ServiceDep,
    q: Annotated[str, Query(description="The query (non-blank; length limited by the server).")],
    k: Annotated[int, Query(ge=1, le=MAX_K, description="Number of results.")] = DEFAULT_K,
    mode: Annotated[
        str, Query(description="dense, bm25 or hybrid.", examples=[m.value for m in SearchMode])
    ] = DEFAULT_MODE.value,
    dim: Annotated[
        int | None, Query(description="Shortlist dimension (see /health: index.dims).")
    ] = None,
    chunks: Annotated[bool, Query(description="Rank chunks instead of documents.")] = False,
    filter: Annotated[  # noqa: A002 - the public parameter's name
        list[str] | None,
        Query(description="Metadata filter FIELD OP VALUE (=, !=, <, <=, >, >=, in), applied before ranking; "
              "repeat for several.", examples=["year>=2020"]),
    ] = None,
) -> JSONResponse:
    index = service.index
    query = _check_query(service, q)
    search_mode = _check_mode(service, mode)
    if dim is not None and dim not in index.dims:
        raise ParameterError(
            "dim", f"dim must be one of: {', '.join(map(str, index.dims))} (got {dim})", index.dims
        )
    if service.query_log is not None:
        service.query_log.write(query, search_mode.value)
    start = time.perf_counter()
    results = index.search(query, k=k, mode=search_mode, dim=dim, documents=not chunks, filters=filter)
    took_ms = (time.perf_counter() - start) * 1000
    # A response, not a dict: FastAPI would validate and re-encode the dict (in another threadpool hop).
    return JSONResponse({
        "query": query,
        "mode": search_mode.value,
        "dim": index.dims[0] if dim is None else dim,
        "k": k,
        "took_ms": round(took_ms, 3),
        "results": [result.to_dict() for result in results],
    })


@router.get("/documents/{doc_id:path}", summary="One full document")
def document(service: ServiceDep, doc_id: str) -> dict[str, Any]:
    doc = service.index.document(doc_id)
    return {"id": doc.id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}


@router.get("/health", summary="Liveness; with the key (if set): defaults, limits, the index")
def health(service: ServiceDep, request: Request) -> dict[str, Any]:
    if service.api_key is not None and not request_has_key(request.scope, service.key_bytes):
        return {"status": "ok", "auth_required": True}
    index = service.index
    return {
        "status": "ok",
        "auth_required": service.api_key is not None,
        "defaults": {"mode": DEFAULT_MODE.value, "k": DEFAULT_K, "dim": index.dims[0]},
        "limits": {"max_query_chars": service.max_query_chars, "max_k": MAX_K},
        "index": index.info(),
    }


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


@router.get("/docs", include_in_schema=False)
def docs(request: Request) -> HTMLResponse:
    """FastAPI's Swagger page (its script comes from a CDN); forwards ``?api_key=``."""
    key = request.query_params.get("api_key")
    schema = "openapi.json" + (f"?api_key={quote(key)}" if key else "")
    return get_swagger_ui_html(openapi_url=schema, title=f"{request.app.title} - API")


def _check_query(service: Service, q: str) -> str:
    query = q.strip()
    if not query or len(q) > service.max_query_chars:
        problem = "is blank" if not query else f"has {len(q)} characters"
        raise ParameterError("q", f"q {problem}; send {service.allowed('q')}", service.allowed("q"))
    return query


def _check_mode(service: Service, mode: str) -> SearchMode:
    try:
        return SearchMode(mode)
    except SearchOptionError as error:
        raise ParameterError("mode", str(error), service.allowed("mode")) from error


# -- errors ------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, **extra}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    service: Service = app.state.service

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        location = first.get("loc", ())
        parameter = str(location[-1]) if location else "request"
        given = first.get("input")
        problem = "is missing" if first.get("type") == "missing" else f"is invalid (got {given!r})"
        allowed = service.allowed(parameter)
        message = f"{parameter} {problem}" + (f"; send {_describe(allowed)}" if allowed else "")
        return _error(422, "invalid_parameter", message, parameter=parameter, allowed=allowed)

    @app.exception_handler(ParameterError)
    async def _bad_parameter(request: Request, error: ParameterError) -> JSONResponse:
        return _error(
            422, "invalid_parameter", str(error), parameter=error.parameter, allowed=error.allowed
        )

    @app.exception_handler(SearchOptionError)
    async def _bad_option(request: Request, error: SearchOptionError) -> JSONResponse:
        return _error(400, "invalid_option", str(error))

    @app.exception_handler(StoreError)
    async def _store(request: Request, error: StoreError) -> JSONResponse:
        logger.error("store error on %s: %s", request.url.path, error)
        return _error(503, "store_unavailable", "the index's PostgreSQL store is unavailable (see the server log)")

    @app.exception_handler(UnknownDocumentError)
    async def _unknown_document(request: Request, error: UnknownDocumentError) -> JSONResponse:
        doc_id = request.path_params.get("doc_id", "")
        return _error(404, "unknown_document", f"no document {doc_id!r} in the index")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if error.status_code == 404 else "http_error"
        response = _error(error.status_code, code, str(error.detail))
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.error("unexpected error on %s", request.url.path, exc_info=error)
        return _error(500, "internal_error", "internal server error (see the server log)")


def _describe(allowed: Any) -> str:
    if isinstance(allowed, list):
        return "one of: " + ", ".join(str(value) for value in allowed)
    return str(allowed)


# -- running in a background thread (tests, benchmarks) --------------------------------------


@contextlib.contextmanager
def serve_in_background(
    app: FastAPI, *, host: str = "127.0.0.1", timeout: float = 30.0
) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free port of ``host`` in a thread; yields its base URL.

    The server stops (and the thread ends) when the ``with`` block exits.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", **server_options(app)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the search service did not start on {host}:{port}")
            time.sleep(0.02)
        yield f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
