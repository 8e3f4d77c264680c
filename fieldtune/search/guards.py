"""Request guards of the search service: over-long URLs, foreign ``Host`` headers and the API key.

Each guard is a plain ASGI middleware (no task or thread per request) that answers
with the service's JSON error shape ``{"error": code, "message": text}``:

* :class:`UrlLengthGuard` answers 414 for a request whose path and query string are
  longer than the limit. uvicorn's h11 parser rejects a request *head* above its
  own limit (16 KiB by default) by closing the connection, which a client sees as a
  reset; :func:`h11_limit` raises that limit (to 512 KiB) so the app can say 414.
  A head longer still is uvicorn's to refuse (400, or a reset).
* :class:`HostGuard` answers 421 unless the ``Host`` header names one of the
  allowed hosts. A web page can point its own domain at 127.0.0.1 (DNS rebinding)
  and then read a localhost server; its requests still carry the page's domain in
  ``Host``, which is how they are told apart.
* :class:`ApiKeyMiddleware` answers 401 without the key (header or ``?api_key=``),
  except on the paths the page needs to load and ask for it.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from starlette.responses import JSONResponse

API_KEY_HEADER = "X-API-Key"
#: Paths served without the API key (the page must load so the user can type the key).
OPEN_PATHS = frozenset({"/", "/health", "/favicon.ico"})
OPEN_PREFIXES = ("/static/",)
#: The names a browser on this machine uses for a server bound to loopback.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: ``--allow-host '*'`` turns the Host check off (e.g. behind a proxy that checks it).
ANY_HOST = "*"
#: Bytes a percent-encoded query character can take (a 4-byte UTF-8 character as %XX%XX%XX%XX).
_BYTES_PER_QUERY_CHAR = 12
#: Room in the URL for the path and the other parameters besides ``q``.
_URL_SLACK = 4096
#: Room in the request head for the headers besides the request line.
_HEADER_ROOM = 64 * 1024
#: The smallest request head uvicorn reads whole (its default, 16 KiB, resets a longer URL): a
#: URL up to about this size gets a 414; memory held per open connection stays bounded by it.
_MIN_HEAD_BYTES = 512 * 1024


def max_url_bytes(max_query_chars: int) -> int:
    """The longest path plus query string accepted: any query the length limit allows fits."""
    return max(16 * 1024, _BYTES_PER_QUERY_CHAR * max_query_chars + _URL_SLACK)


def h11_limit(max_query_chars: int) -> int:
    """uvicorn's ``h11_max_incomplete_event_size``: a request head the app gets to answer."""
    return max(_MIN_HEAD_BYTES, max_url_bytes(max_query_chars) + _HEADER_ROOM)


def _json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    return next((value for key, value in scope.get("headers", []) if key.lower() == name), None)


class UrlLengthGuard:
    """414 for a path plus query string longer than ``max_bytes``."""

    def __init__(self, app: Any, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope.get("raw_path") or scope["path"].encode("utf-8")
            length = len(path) + len(scope.get("query_string", b""))
            if length > self.max_bytes:
                message = f"the URL has {length} bytes; this server takes at most {self.max_bytes}"
                await _json_error(414, "uri_too_long", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_name(header: str) -> str:
    """The host part of a ``Host`` header, lower case, without port, brackets or final dot."""
    value = header.strip().lower()
    if value.startswith("["):  # [::1]:8000
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # name:8000 (a bare IPv6 address has several colons)
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def allowed_hosts(bound: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The loopback names, the address the server is bound to, and ``extra`` (normalised)."""
    names = [name for name in (*LOOPBACK_HOSTS, bound, *extra) if name]
    return tuple(dict.fromkeys(name if name == ANY_HOST else host_name(name) for name in names))


class HostGuard:
    """421 for a request whose ``Host`` is not one of ``hosts`` (a request without one passes).

    A browser always sends ``Host``; only a hand-made HTTP/1.0 request omits it, and
    that cannot come from a page doing DNS rebinding.
    """

    def __init__(self, app: Any, *, hosts: Iterable[str]) -> None:
        self.app = app
        self.hosts = frozenset(h if h == ANY_HOST else host_name(h) for h in hosts)
        self.any_host = ANY_HOST in self.hosts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self.any_host:
            given = _header(scope, b"host")
            name = host_name(given.decode("latin-1")) if given is not None else None
            if name is not None and name not in self.hosts:
                allowed = ", ".join(sorted(self.hosts))
                message = (
                    f"this server does not answer for host {name!r} (it answers for {allowed}); "
                    f"if that name is yours, restart it with --allow-host {name}"
                )
                await _json_error(421, "host_not_allowed", message)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def request_has_key(scope: dict[str, Any], key: bytes) -> bool:
    """Whether the request carries ``key`` as header ``X-API-Key`` or as ``?api_key=``."""
    given = _header(scope, API_KEY_HEADER.lower().encode("latin-1"))
    if given is None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        values = query.get("api_key")
        given = values[-1].encode("utf-8") if values else None
    return given is not None and hmac.compare_digest(given, key)


def is_open(path: str) -> bool:
    """Whether ``path`` is served without the key (the page, its assets, a minimal /health)."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class ApiKeyMiddleware:
    """Reject requests without the API key (header ``X-API-Key`` or ``?api_key=``) with 401.

    ``/health``, the page and ``/static/`` stay open so the page can ask for the key;
    ``/health`` then says only whether the server is up (see the service's route).
    """

    def __init__(self, app: Any, *, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or is_open(scope["path"]) or request_has_key(scope, self._key):
            await self.app(scope, receive, send)
            return
        message = f"this server needs an API key: send header {API_KEY_HEADER} or ?api_key="
        headers = {"WWW-Authenticate": API_KEY_HEADER}
        response = _json_error(401, "unauthorized", message, headers=headers)
        await response(scope, receive, send)
