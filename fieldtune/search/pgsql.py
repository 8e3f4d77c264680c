"""PostgreSQL plumbing of the pgvector store: DSNs without passwords, pooled connections, filters as SQL.

The index directory records the store's DSN with any password removed
(:func:`public_dsn`); the password comes from the environment when a search
connects: ``PGPASSWORD`` or ``~/.pgpass`` (read by libpq itself), or a whole DSN
in :data:`DSN_ENV`, which replaces the recorded one. Within the process that
built the index, the DSN the user gave is remembered, so a build given a DSN
with a password can finish.

:func:`filter_sql` translates :class:`~fieldtune.search.filters.Filter` to a
condition on the ``metadata`` JSONB column with the semantics documented in
:mod:`fieldtune.search.filters` (the tests check both sides agree).

psycopg is imported inside the functions (the ``pgvector`` extra), so that
``fieldtune --help`` and local indexes never load it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from fieldtune.errors import FieldtuneError, require_extra
from fieldtune.search.filters import NUMBER_PATTERN, Filter, Operator, as_number

#: An environment variable holding the whole DSN (password included) searches connect with.
DSN_ENV = "FIELDTUNE_PG_DSN"
EXTRA = "pgvector"
#: Idle connections kept per DSN (searches from a server's threads reuse them).
POOL_SIZE = 8

_given: dict[str, str] = {}  # public DSN -> the DSN the user gave this process (may hold a password)
_pools: dict[str, _Pool] = {}
_pools_lock = threading.Lock()


class StoreError(FieldtuneError):
    """The PostgreSQL store cannot be reached or used; the message says which DSN and why."""


def psycopg() -> Any:
    """The psycopg module, or an error naming the extra to install."""
    require_extra("pgvector", EXTRA)
    return require_extra("psycopg", EXTRA)


def public_dsn(dsn: str) -> str:
    """``dsn`` without its password (what the manifest may record); remembered for this process."""
    conninfo = psycopg().conninfo
    try:
        parts = conninfo.conninfo_to_dict(dsn)
    except psycopg().ProgrammingError as error:
        raise StoreError(f"bad PostgreSQL DSN ({error})") from error
    parts.pop("password", None)
    public = conninfo.make_conninfo(**parts)
    _given[public] = dsn
    return public


def resolve_dsn(public: str) -> str:
    """The DSN to connect with: :data:`DSN_ENV` if set, else the one given to this process, else
    the recorded one (libpq adds ``PGPASSWORD`` or ``~/.pgpass``)."""
    return os.environ.get(DSN_ENV) or _given.get(public) or public


class _Pool:
    """A few open connections to one DSN, with the vector types registered."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._idle: list[Any] = []
        self._lock = threading.Lock()

    def _open(self) -> Any:
        pg = psycopg()
        try:
            connection = pg.connect(self.dsn, connect_timeout=10)
        except pg.OperationalError as error:
            raise StoreError(f"cannot connect to PostgreSQL ({error}); check --dsn, {DSN_ENV} or PGPASSWORD") from error
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
        connection.commit()
        from pgvector.psycopg import register_vector

        register_vector(connection)
        return connection

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        """A connection in a transaction, committed when the block ends (rolled back if it fails)."""
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None or connection.closed:
            connection = self._open()
        try:
            yield connection
            connection.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                connection.rollback()
            connection.close()
            raise
        with self._lock:
            if len(self._idle) < POOL_SIZE:
                self._idle.append(connection)
                return
        connection.close()


@contextlib.contextmanager
def connection(public: str) -> Iterator[Any]:
    """A pooled connection to the store recorded as ``public`` (see :func:`resolve_dsn`), in a
    transaction; a database error in the block becomes a :class:`StoreError` naming the store."""
    pg = psycopg()
    dsn = resolve_dsn(public)
    with _pools_lock:
        pool = _pools.setdefault(dsn, _Pool(dsn))
    try:
        with pool.connection() as conn:
            yield conn
    except pg.Error as error:
        raise StoreError(f"PostgreSQL store {public}: {error}".strip()) from error


# -- filters -----------------------------------------------------------------------------------

_ELEMENTS = (
    "jsonb_array_elements(CASE jsonb_typeof(metadata -> %s::text) WHEN 'array' THEN metadata -> %s::text "
    "ELSE jsonb_build_array(metadata -> %s::text) END) AS e(v)"
)
_SCALAR = "jsonb_typeof(e.v) IN ('string', 'number', 'boolean')"
_TEXT = "(e.v #>> '{}')"
_NUMBER = (
    f"(CASE WHEN jsonb_typeof(e.v) = 'number' OR (jsonb_typeof(e.v) = 'string' AND {_TEXT} ~ '{NUMBER_PATTERN}') "
    f"THEN {_TEXT}::numeric END)"
)
_SQL_OP = {Operator.LT: "<", Operator.LE: "<=", Operator.GT: ">", Operator.GE: ">="}


def _equals(value: str) -> tuple[str, list[Any]]:
    number = as_number(value)
    if number is None:
        return f"{_TEXT} = %s", [value]
    return f"({_NUMBER} = %s OR {_TEXT} = %s)", [number, value]


def _exists(field: str, condition: str, params: list[Any]) -> tuple[str, list[Any]]:
    return f"EXISTS (SELECT 1 FROM {_ELEMENTS} WHERE {_SCALAR} AND {condition})", [field, field, field, *params]


def filter_sql(item: Filter) -> tuple[str, list[Any]]:
    """A condition on ``metadata`` (and its parameters) true exactly where ``item.matches`` is."""
    if item.op is Operator.NE:
        present, present_params = _exists(item.field, "true", [])
        equal, equal_params = _exists(item.field, *_equals(item.values[0]))
        return f"({present} AND NOT {equal})", [*present_params, *equal_params]
    if item.op.ordering:
        number = as_number(item.values[0])
        if number is None:
            return _exists(item.field, f'{_TEXT} COLLATE "C" {_SQL_OP[item.op]} %s', [item.values[0]])
        return _exists(item.field, f"{_NUMBER} {_SQL_OP[item.op]} %s", [number])
    parts = [_equals(value) for value in item.values]
    return _exists(item.field, "(" + " OR ".join(p[0] for p in parts) + ")", [x for p in parts for x in p[1]])


def filters_sql(filters: Sequence[Filter]) -> tuple[str, list[Any]]:
    """``AND``-joined conditions of every filter (``true`` for none)."""
    if not filters:
        return "true", []
    parts = [filter_sql(item) for item in filters]
    return " AND ".join(p[0] for p in parts), [x for p in parts for x in p[1]]
