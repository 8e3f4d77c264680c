"""A PostgreSQL + pgvector store behind the backend seam (``fieldtune index --store pgvector --dsn DSN``).

One table per index holds every chunk row: its global row, document and chunk
ids, the document's metadata (JSONB), its text (with a generated ``tsvector``
for full-text search) and its embedding as ``halfvec``, loaded with binary COPY.
Indexes: HNSW on the full vector (cosine), one HNSW *expression* index per
Matryoshka prefix (``subvector(embedding, 1, d)::halfvec(d)``: a search at
``--dim d`` shortlists on it and the index rescores at full dimension), GIN on
the ``tsvector``.

Generations. Each row carries ``born`` (the generation that added it) and
``died`` (the one that deleted it); generation ``g`` sees rows with
``born <= g`` and ``died`` null or above ``g``, so a reader of the previous
manifest keeps its view while an update is written. An update (the first bulk
load, an add, a delete) is one transaction that also records the generation in
``<table>_generations``: a load killed mid-COPY is rolled back by PostgreSQL and
leaves nothing visible, and a generation committed in PostgreSQL whose manifest
was never written (a crash between the two) is removed by the next update before
it reuses the number. Rows deleted before the previous generation are removed
for good at each update.

Searches (``exact = False``: the index rescores the candidates against its own
stored vectors, so scores equal the local index's): ``ORDER BY embedding <=> q``
with ``hnsw.iterative_scan`` so metadata filters (:mod:`fieldtune.search.pgsql`)
apply before the ``LIMIT``; if the scan still gives fewer rows than asked, the
query is rerun without the index (exact, all passing rows). Text search
(``TextSearch``): PostgreSQL stems the query and finds the rows sharing a word
with it (GIN), scored by Lucene BM25 computed in SQL from the ``tsvector``s
(``ts_rank`` has no IDF, and agreed with the local BM25 hybrid on 82% of the top
10 against 97% for BM25); hybrid search fuses it with the dense ranking exactly
as the local index fuses BM25 (:mod:`fieldtune.search.fusion`).

The index directory keeps its segments (chunk records, vectors for rescoring);
a store that also moves those into PostgreSQL is a wider seam (see ``base.py``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.encoding import document_text, truncate
from fieldtune.search import pgsql
from fieldtune.search.backends.base import INDEX_BACKENDS, StoredVectors
from fieldtune.search.filters import RowFilter
from fieldtune.search.fusion import Hits
from fieldtune.search.manifest import DenseSettings

logger = logging.getLogger("fieldtune.search")

NAME = "pgvector"
#: HNSW settings (``ann.config`` may override them): pgvector's defaults (m 16, ef_construction 64) gave
#: recall@10 0.914 at 100k embedding-like vectors against 0.976 for the local usearch graph
#: (benchmarks/results/pgvector_scale.md), so the graph is built closer to the local one's (M 48, 200),
#: and the search beam is at least the local beam at 100k rows (256), at most pgvector's limit.
HNSW_M, HNSW_EF_CONSTRUCTION, MIN_EF_SEARCH, MAX_EF_SEARCH = 32, 128, 256, 1000
#: PostgreSQL text search configuration (stemming and stop words, like the local BM25's).
TEXT_CONFIG = "english"
#: Memory for building the HNSW indexes during an update (PostgreSQL's default, 64MB, spills at ~50k rows).
MAINTENANCE_WORK_MEM = "1GB"
#: BM25 parameters of the text search (the local index's, see :mod:`fieldtune.bm25`).
BM25_K1, BM25_B = 1.2, 0.75
#: A row's length for BM25: its indexed words, stop words left out (positions per lexeme, summed).
_LENGTH = "(SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0) FROM unnest(tsv))"
#: Rows per ``COPY`` write batch read from the segments.
COPY_BATCH = 4096


def settings(dsn: str, threshold: int, dims: Sequence[int]) -> DenseSettings:
    """The manifest's ``ann`` section for a new pgvector index: DSN without password, a new table."""
    config = {
        "dsn": pgsql.public_dsn(dsn),
        "table": f"fieldtune_{uuid.uuid4().hex[:12]}",
        "prefix_dims": [int(d) for d in dims[1:]],
        "text_config": TEXT_CONFIG,
    }
    return DenseSettings(threshold, config, backend=NAME)


class PgvectorBackend:
    """One generation of an index's chunk table (see the module docstring)."""

    name = NAME
    exact = False

    def __init__(
        self,
        vectors: StoredVectors,
        settings: DenseSettings,
        generation: int | None,
        *,
        first_new_row: int = 0,
        removed: np.ndarray | None = None,
    ) -> None:
        self.vectors = vectors
        self.settings = settings
        self.config = dict(settings.config)
        self.table = str(self.config["table"])
        self.dsn = str(self.config["dsn"])
        #: The published generation this object reads; None until :meth:`save` writes it.
        self.generation = generation
        self._first_new_row = first_new_row
        self._removed = np.zeros(0, dtype=np.int64) if removed is None else np.asarray(removed, dtype=np.int64)
        # Text statistics of this generation, filled by the first text searches (it never changes).
        self._average: float | None = None
        self._frequency: dict[str, int] = {}

    # -- the Protocol --------------------------------------------------------------------------

    @classmethod
    def build(cls, vectors: StoredVectors, settings: DenseSettings) -> PgvectorBackend:
        return cls(vectors, settings, None)

    @classmethod
    def open(cls, root: Path, settings: DenseSettings, vectors: StoredVectors) -> PgvectorBackend:
        if not settings.file:
            raise ValueError("the manifest names no pgvector generation")
        return cls(vectors, settings, int(settings.file.rsplit("/", 1)[-1]))

    def updated(self, vectors: StoredVectors, *, first_new_row: int, removed: np.ndarray) -> PgvectorBackend:
        return PgvectorBackend(vectors, self.settings, None, first_new_row=first_new_row, removed=removed)

    def save(self, root: Path, name: str) -> str:
        if self.generation is None:
            self._publish(int(name))
        return self.file

    @property
    def file(self) -> str:
        """What the manifest records: the table and generation (nothing under the index root)."""
        return f"{NAME}:{self.table}/{self.generation:06d}"

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.vectors.live_rows,
            "table": self.table,
            "generation": self.generation,
            "dsn": self.dsn,
            "prefix_dims": self.config.get("prefix_dims", []),
        }

    # -- searching -----------------------------------------------------------------------------

    def _visible(self) -> tuple[str, list[Any]]:
        if self.generation is None:
            raise RuntimeError("search of a pgvector generation that was never saved")
        return "born <= %s AND (died IS NULL OR died > %s)", [self.generation, self.generation]

    def search(self, queries: np.ndarray, count: int, dim: int, *, where: RowFilter | None = None) -> list[Hits]:
        """Up to ``count`` visible rows per query that pass ``where``, nearest first at ``dim``."""
        from pgvector import HalfVector
        from psycopg import sql

        full = self.vectors.dimension
        prefix = sql.SQL("(subvector(embedding, 1, {d})::halfvec({d}))").format(d=sql.Literal(dim))
        column = sql.SQL("embedding") if dim == full else prefix
        visible, visible_params = self._visible()
        condition, condition_params = pgsql.filters_sql(where.filters if where else ())
        query = sql.SQL(
            "SELECT row FROM {t} WHERE {visible} AND {condition} ORDER BY {column} <=> %s::halfvec({d}) LIMIT %s"
        ).format(
            t=sql.Identifier(self.table), visible=sql.SQL(visible), condition=sql.SQL(condition), column=column,
            d=sql.Literal(dim),
        )
        ef_search = str(min(MAX_EF_SEARCH, max(int(self.config.get("ef_search", MIN_EF_SEARCH)), count)))
        out = []
        with pgsql.connection(self.dsn) as conn:
            conn.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                [ef_search],
            )
            for vector in truncate(queries, dim):
                params = [*visible_params, *condition_params, HalfVector(vector.astype(np.float16)), count]
                rows = [r[0] for r in conn.execute(query, params).fetchall()]
                if len(rows) < count:  # the graph walk gave up before enough rows passed: scan them all
                    conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
                    rows = [r[0] for r in conn.execute(query, params).fetchall()]
                    conn.execute("SELECT set_config('enable_indexscan', 'on', true)")
                keys = np.asarray(rows, dtype=np.int64)
                out.append(Hits(keys, np.zeros(len(keys)), keys))
        return out

    def text_search(self, queries: list[str], count: int, *, where: RowFilter | None = None) -> list[Hits]:
        """Up to ``count`` visible rows per query sharing a word with it, by BM25 computed in SQL.

        PostgreSQL parses and stems (``to_tsvector``, the GIN index finds the rows);
        the score is the local index's Lucene BM25 (``k1`` 1.2, ``b`` 0.75) over the
        ``tsvector``'s term counts, with document frequencies counted in this generation
        (``ts_rank`` has no IDF: common words would outrank rare ones).
        """
        from psycopg import sql

        visible, visible_params = self._visible()
        condition, condition_params = pgsql.filters_sql(where.filters if where else ())
        config = sql.Literal(self.config.get("text_config", TEXT_CONFIG))
        query = sql.SQL(
            "SELECT c.row, sum(w.idf * u.tf * {k1p1} / (u.tf + {k1} * (1 - {b} + {b} * c.len / {avg}))) AS score "
            "FROM (SELECT row, tsv, " + _LENGTH + " AS len FROM {t} WHERE tsv @@ %s::tsquery AND {visible} "
            "AND {condition}) AS c "
            "CROSS JOIN LATERAL (SELECT lexeme, coalesce(array_length(positions, 1), 1) AS tf FROM unnest(c.tsv)) AS u "
            "JOIN unnest(%s::text[], %s::float8[]) AS w(lexeme, idf) ON w.lexeme = u.lexeme "
            "GROUP BY c.row ORDER BY score DESC, c.row LIMIT %s"
        )
        out = []
        with pgsql.connection(self.dsn) as conn:
            average = self._average_length(conn, visible, visible_params)
            bound = query.format(
                t=sql.Identifier(self.table), visible=sql.SQL(visible), condition=sql.SQL(condition),
                k1p1=sql.Literal(BM25_K1 + 1), k1=sql.Literal(BM25_K1), b=sql.Literal(BM25_B),
                avg=sql.Literal(max(average, 1.0)),
            )
            for text in queries:
                words = [r[0] for r in conn.execute(
                    sql.SQL("SELECT lexeme FROM unnest(to_tsvector({}, %s))").format(config), [text]
                )]
                if not words:
                    out.append(Hits.empty())
                    continue
                idf = [self._idf(conn, word, visible, visible_params) for word in words]
                found = conn.execute(bound, [" | ".join(map(_tsquery_word, words)), *visible_params,
                                             *condition_params, words, idf, count]).fetchall()
                keys = np.asarray([r[0] for r in found], dtype=np.int64)
                out.append(Hits.ranked(keys, np.asarray([r[1] for r in found], dtype=np.float64)))
        return out

    def _average_length(self, conn: Any, visible: str, params: list[Any]) -> float:
        """Mean number of indexed words per visible row (once per generation and process)."""
        from psycopg import sql

        if self._average is None:
            statement = sql.SQL("SELECT avg(" + _LENGTH + ") FROM {t} WHERE {v}").format(
                t=sql.Identifier(self.table), v=sql.SQL(visible)
            )
            self._average = float(conn.execute(statement, params).fetchone()[0] or 0.0)
        return self._average

    def _idf(self, conn: Any, word: str, visible: str, params: list[Any]) -> float:
        """Lucene's ``log(1 + (N - df + 0.5) / (df + 0.5))`` over the visible rows (cached per word)."""
        from psycopg import sql

        if word not in self._frequency:
            statement = sql.SQL("SELECT count(*) FROM {t} WHERE tsv @@ %s::tsquery AND {v}").format(
                t=sql.Identifier(self.table), v=sql.SQL(visible)
            )
            self._frequency[word] = int(conn.execute(statement, [_tsquery_word(word), *params]).fetchone()[0])
        frequency, rows = self._frequency[word], self.vectors.live_rows
        return float(np.log(1.0 + (rows - frequency + 0.5) / (frequency + 0.5)))

    # -- writing -------------------------------------------------------------------------------

    def _publish(self, generation: int) -> None:
        """Write generation ``generation`` in one transaction (see the module docstring)."""
        from psycopg import sql

        started = time.perf_counter()
        names = _names(self.table)
        with pgsql.connection(self.dsn) as conn:
            conn.execute(sql.SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(sql.Literal(self.table)))
            # An HNSW graph built in memory is several times faster than one spilled to disk.
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)",
                         [str(self.config.get("maintenance_work_mem", MAINTENANCE_WORK_MEM))])
            for statement in _schema(self.table, self.vectors.dimension, self.config):
                conn.execute(statement)
            # A generation committed here whose manifest was never written: drop it before reusing its number.
            conn.execute(sql.SQL("DELETE FROM {t} WHERE born >= %s").format(**names), [generation])
            conn.execute(sql.SQL("UPDATE {t} SET died = NULL WHERE died >= %s").format(**names), [generation])
            conn.execute(sql.SQL("DELETE FROM {g} WHERE generation >= %s").format(**names), [generation])
            # Rows no generation from the previous one on can see.
            conn.execute(sql.SQL("DELETE FROM {t} WHERE died < %s").format(**names), [generation])
            copied = self._copy(conn, generation)
            if len(self._removed):
                conn.execute(
                    sql.SQL("UPDATE {t} SET died = %s WHERE row = ANY(%s) AND died IS NULL").format(**names),
                    [generation, self._removed.tolist()],
                )
            for statement in _indexes(self.table, self.config):
                conn.execute(statement)
            conn.execute(sql.SQL("INSERT INTO {g} (generation, live_rows) VALUES (%s, %s)").format(**names),
                         [generation, self.vectors.live_rows])
        self.generation = generation
        logger.info(
            "pgvector generation %d of %s: %d rows copied, %d deleted in %.1fs",
            generation, self.table, copied, len(self._removed), time.perf_counter() - started,
        )

    def _copy(self, conn: Any, generation: int) -> int:
        """Binary COPY of the live rows from ``first_new_row`` on, tagged ``born = generation``."""
        from pgvector import HalfVector
        from psycopg import sql
        from psycopg.types.json import Jsonb

        statement = sql.SQL(
            "COPY {t} (row, born, doc_id, chunk_id, metadata, body, embedding) FROM STDIN WITH (FORMAT BINARY)"
        ).format(t=sql.Identifier(self.table))
        copied = 0
        with conn.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(["int8", "int4", "text", "text", "jsonb", "text", "halfvec"])
            for row, chunk, metadata, vector in _live_rows(self.vectors, self._first_new_row):
                body = document_text(chunk.get("title", ""), chunk["text"])
                copy.write_row([row, generation, chunk["doc_id"], chunk["id"], Jsonb(metadata), body,
                                HalfVector(vector.astype(np.float16))])
                copied += 1
        return copied


def _tsquery_word(lexeme: str) -> str:
    """``lexeme`` as one quoted ``tsquery`` operand (no re-parsing, so no stemming twice)."""
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _names(table: str) -> dict[str, Any]:
    from psycopg import sql

    return {"t": sql.Identifier(table), "g": sql.Identifier(f"{table}_generations")}


def _schema(table: str, dimension: int, config: dict[str, Any]) -> list[Any]:
    from psycopg import sql

    names = _names(table)
    text_config = sql.Literal(config.get("text_config", TEXT_CONFIG))
    return [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {t} (row bigint PRIMARY KEY, born integer NOT NULL, died integer, "
            "doc_id text NOT NULL, chunk_id text NOT NULL, metadata jsonb NOT NULL, body text NOT NULL, "
            "tsv tsvector GENERATED ALWAYS AS (to_tsvector({c}::regconfig, body)) STORED, "
            "embedding halfvec({d}) NOT NULL)"
        ).format(c=text_config, d=sql.Literal(dimension), **names),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {g} (generation integer PRIMARY KEY, "
            "published timestamptz NOT NULL DEFAULT now(), live_rows bigint NOT NULL)"
        ).format(**names),
    ]


def _indexes(table: str, config: dict[str, Any]) -> list[Any]:
    """Created after the first COPY (a bulk-built HNSW graph is faster than row-by-row inserts)."""
    from psycopg import sql

    t = sql.Identifier(table)
    with_options = sql.SQL("WITH (m = {m}, ef_construction = {ef})").format(
        m=sql.Literal(int(config.get("hnsw_m", HNSW_M))),
        ef=sql.Literal(int(config.get("hnsw_ef_construction", HNSW_EF_CONSTRUCTION))),
    )
    statements = [
        sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} USING hnsw (embedding halfvec_cosine_ops) {w}").format(
            i=sql.Identifier(f"{table}_hnsw"), t=t, w=with_options
        ),
        sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} USING gin (tsv)").format(i=sql.Identifier(f"{table}_tsv"), t=t),
        sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} (born, died)").format(i=sql.Identifier(f"{table}_gen"), t=t),
    ]
    for dim in config.get("prefix_dims", []):
        statements.append(
            sql.SQL(
                "CREATE INDEX IF NOT EXISTS {i} ON {t} USING hnsw ((subvector(embedding, 1, {d})::halfvec({d})) "
                "halfvec_cosine_ops) {w}"
            ).format(i=sql.Identifier(f"{table}_hnsw_{int(dim)}"), t=t, d=sql.Literal(int(dim)), w=with_options)
        )
    return statements


def _live_rows(
    vectors: StoredVectors, first_row: int
) -> Iterator[tuple[int, dict[str, Any], dict[str, Any], np.ndarray]]:
    """(global row, chunk record, document metadata, unit vector) of live rows from ``first_row``."""
    for offset, segment in vectors.store.offsets():
        if offset + segment.rows <= first_row:
            continue
        metadata = [record.get("metadata") or {} for record in segment.documents]
        chunk_docs = np.asarray(segment.chunk_docs)
        chunks = iter(segment.chunks)
        for start in range(0, segment.rows, COPY_BATCH):
            stop = min(start + COPY_BATCH, segment.rows)
            block = segment.dequantized(start, stop)
            for local in range(start, stop):
                chunk, row = next(chunks), offset + local
                if row >= first_row and not vectors.deleted[row]:
                    yield row, chunk, metadata[int(chunk_docs[local])], block[local - start]


INDEX_BACKENDS.register(NAME, PgvectorBackend)
