"""The search index: build it from a corpus, open it, search it, add and delete documents.

``Index.build`` reads a corpus, chunks it with the model's tokenizer, encodes
the chunks once (``Encoder.encode(kind="document")`` on ``title + text``) and
writes the directory described in :mod:`fieldtune.search.state`. An opened
:class:`Index` keeps the model loaded and serves any number of concurrent
searches; ``add`` encodes only the new documents and ``delete`` encodes
nothing. Both publish a new generation atomically (see ``state.py``), and an
``Index`` notices a generation published by another process on its next search.

Search modes (:class:`SearchMode`): ``dense`` ranks chunks by cosine with the
query embedding (``Encoder.encode(kind="query")``, so a model's saved query
prompt applies); ``bm25`` by BM25 over ``title + chunk text``; ``hybrid`` fuses
the two (:mod:`fieldtune.search.fusion`). Results are documents (each with its
best chunk as the passage) unless ``documents=False``.

``dim`` is *the shortlist dimension* (Matryoshka funnel): with ``dim`` below
the index's dimension, candidates are shortlisted by cosine of the first
``dim`` components (renormalised), ``max(10 * k, 100, candidates)`` of them
(``candidates`` = 200 chunks by default), and then rescored with the full
vectors; reported scores are always full-dimension cosines. Below the ANN
threshold the shortlist is an exact search over the truncated vectors (only
the first ``dim`` values of each row are read). Above it the
shortlist comes from the full-dimension HNSW graph (there is no graph per
dimension), so ``dim`` then only sets how many candidates are rescored and
does not make the search cheaper.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.encoders.ray import RaySettings
from fieldtune.search import builder
from fieldtune.search.builder import DEFAULT_ANN_THRESHOLD
from fieldtune.search.coalesce import Coalescer
from fieldtune.search.concepts_view import CatalogCache, ConceptCatalog, ConceptRef
from fieldtune.search.filters import (
    Filter,
    FilterInput,
    MetadataColumns,
    RowFilter,
    check_fields,
    parse_filters,
)
from fieldtune.search.fusion import (
    DEFAULT_FUSION,
    DENSE_WEIGHT,
    RRF_K,
    Hits,
    by_document,
    fuse,
)
from fieldtune.search.manifest import IndexManifest
from fieldtune.search.options import (
    Fusion,
    SearchMode,
    SearchOptionError,
    UnknownDocumentError,
    check_dim,
    check_k,
)
from fieldtune.search.query_cache import QueryEmbeddingCache, QueryKey
from fieldtune.search.query_models import QueryEmbedder, query_encoder
from fieldtune.search.retrieval import bm25_hits, dense_hits
from fieldtune.search.snippet import make_snippet
from fieldtune.search.state import (
    IndexState,
    RWLock,
    collect_garbage,
    file_lock,
    load_current,
    manifest_stamp,
)
from fieldtune.types import Document

logger = logging.getLogger("fieldtune.search")

#: Chunk candidates each system contributes before collapsing to documents and fusing
#: (chosen with the fusion weight on SciFact train queries from 50, 100, 200).
CANDIDATES = 200
#: The query :meth:`Index.warm_up` searches for.
WARM_UP_QUERY = "warm up the search index"


@dataclass(frozen=True)
class SearchResult:
    """One ranked hit: a document (best chunk as ``passage``), or a chunk if ``documents=False``.

    ``highlights`` are ``(start, end)`` character offsets of the query's words
    in ``snippet``; ``concepts`` come from the document's ``concepts`` metadata, and
    ``chunk_concepts`` are the concept graph's concepts named in the passage
    (:mod:`fieldtune.search.concepts_view`; empty when the index has no graph).
    """

    doc_id: str
    score: float
    rank: int
    title: str
    chunk_id: str
    passage: str
    snippet: str
    highlights: list[tuple[int, int]] = field(default_factory=list)
    concepts: list[str] = field(default_factory=list)
    chunk_concepts: list[ConceptRef] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "doc_id": self.doc_id,
            "score": self.score,
            "title": self.title,
            "chunk_id": self.chunk_id,
            "passage": self.passage,
            "snippet": self.snippet,
            "highlights": [list(span) for span in self.highlights],
            "concepts": list(self.concepts),
            "chunk_concepts": [concept.to_dict() for concept in self.chunk_concepts],
        }


class Index:
    """A searchable index directory (see the module docstring)."""

    def __init__(self, root: Path, state: IndexState, encoder: Any = None) -> None:
        self.root = root
        self._state = state
        self._stamp = manifest_stamp(root)
        self._lock = RWLock()
        self._write_mutex = threading.Lock()
        self._encoder = encoder
        self._encoder_lock = threading.Lock()
        #: Recent query vectors (cleared when the query encoder changes); see query_cache.py.
        self.query_cache = QueryEmbeddingCache()
        self._embedder: QueryEmbedder | None = None
        self._coalescer: Coalescer[str, list[SearchResult]] = Coalescer(self._search_together)
        self._metadata: tuple[IndexState, MetadataColumns] | None = None  # of the current generation
        self._concepts = CatalogCache()
        #: Hybrid settings (public so an application or a benchmark can tune them).
        self.fusion: Fusion = DEFAULT_FUSION
        # the model's build may have chosen the weight on its dev queries (recorded at index time)
        chosen = state.manifest.dense_weight
        self.dense_weight: float = chosen if chosen is not None else DENSE_WEIGHT
        self.candidates: int = CANDIDATES

    # -- building and opening ------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        corpus: str | Path | list[Document],
        out: str | Path,
        *,
        model: str = "minilm",
        max_tokens: int = 256,
        overlap: int = 32,
        storage: str = "int8",
        ann_threshold: int = DEFAULT_ANN_THRESHOLD,
        progress: bool = True,
        dim: int | None = None,
        precision: str = "auto",
        store: str = "local",
        dsn: str | None = None,
        ray: RaySettings | None = None,
    ) -> Index:
        """Build an index of ``corpus`` (a path ``read_corpus`` accepts, or documents) at ``out``.

        ``out`` must not exist yet or be an empty directory; the index is
        written beside it and renamed into place, so a failed build leaves
        nothing behind. ``dim`` stores only the first ``dim`` components of
        each embedding (Matryoshka truncation, renormalised); by default the
        model's full dimension is kept. ``store="pgvector"`` with a PostgreSQL ``dsn`` keeps the
        vectors, metadata and text in PostgreSQL (HNSW, full-text search; the password is never
        recorded: see :mod:`fieldtune.search.pgsql`). ``ray`` encodes the corpus on Ray (a local Ray
        or a cluster, optionally writing Parquet shards keyed by chunk id: :mod:`fieldtune.encoders.ray`).
        """
        options = builder.BuildOptions.create(
            model=model,
            max_tokens=max_tokens,
            overlap=overlap,
            storage=storage,
            ann_threshold=ann_threshold,
            dim=dim,
            precision=precision,
            progress=progress,
            store=store,
            dsn=dsn,
            ray=ray,
        )
        root, encoder = builder.build_index(corpus, Path(out), options)
        index = cls.open(root)
        encoder.use_cache, encoder.show_progress = False, False
        index._encoder = encoder
        return index

    @classmethod
    def open(cls, path: str | Path) -> Index:
        """Open an existing index (the model loads on the first dense or hybrid search)."""
        root = Path(path).expanduser()
        return cls(root, load_current(root))

    # -- properties ----------------------------------------------------------------------------

    @property
    def manifest(self) -> IndexManifest:
        """The current generation's ``index.json`` (``info()`` gives it as a dict, with live counts)."""
        return self._state.manifest

    @property
    def dims(self) -> list[int]:
        """Allowed shortlist dimensions: the index's dimension, then powers of two down to 64."""
        return list(self.manifest.dims)

    @property
    def modes(self) -> list[str]:
        return [mode.value for mode in SearchMode]

    @property
    def fusions(self) -> list[str]:
        return [fusion.value for fusion in Fusion]

    def concepts(self) -> ConceptCatalog | None:
        """The concept graph behind this index, for people (:mod:`fieldtune.search.concepts_view`), or None.

        An unreadable graph raises an error naming it (searches then carry no concepts, and say so in the log).
        """
        return self._concepts.get(self.root, self._state.manifest)

    def warm_up(self) -> None:
        """Make the first search as fast as the next ones (``fieldtune serve`` calls this at start).

        Loads the query encoder (and computes its cache key), encodes a query, and runs a
        hybrid search, which reads BM25, every stored vector (or the graph) and the
        documents' records; the warm-up query's vector is not kept in the LRU.
        """
        self._refresh()
        embedder = self._query_embedder()
        embedder.warm_up()
        self.search(WARM_UP_QUERY, k=10, mode=SearchMode.HYBRID)
        fingerprint, prompt = embedder.identity()
        self.query_cache.discard(QueryKey(WARM_UP_QUERY, fingerprint, prompt))

    def info(self) -> dict[str, Any]:
        """The manifest plus live counts and options (for a health endpoint)."""
        self._refresh()
        state = self._state
        backend = state.backend.describe()
        catalog = self._concepts.get(self.root, state.manifest, strict=False)
        return {
            **state.manifest.to_dict(),
            "path": str(self.root),
            "modes": self.modes,
            "fusions": self.fusions,
            "fusion": {
                "default": self.fusion.value,
                "dense_weight": self.dense_weight,
                "rrf_k": RRF_K,
                "candidates": self.candidates,
            },
            "backend": backend,
            "ann_in_use": not state.backend.exact,
            "ann_expansion_search": backend.get("expansion_search"),
            "ann_shards": backend.get("shards"),
            "storage_bytes": state.store.nbytes(),
            "concepts": None if catalog is None else {"count": len(catalog), "graph": str(catalog.source)},
            "query_cache": self.query_cache.stats(),
        }

    # -- searching -----------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: SearchMode | str = SearchMode.HYBRID,
        dim: int | None = None,
        documents: bool = True,
        fusion: Fusion | str | None = None,
        filters: FilterInput = None,
    ) -> list[SearchResult]:
        """The ``k`` best documents (or chunks) for ``query``; see the module docstring.

        ``filters`` (``["year>=2020", "category=math.CO"]``, or ``{"category": "math.CO"}``)
        restrict the candidates to documents whose metadata passes them all, before
        ranking (:mod:`fieldtune.search.filters`); a bad filter or a field no document
        has raises :class:`~fieldtune.search.filters.FilterError`.
        """
        if filters or not isinstance(query, str):
            return self.search_batch(
                [query], k=k, mode=mode, dim=dim, documents=documents, fusion=fusion, filters=filters
            )[0]
        k, mode, dim, fusion = self._settings(k, mode, dim, fusion)
        # Concurrent searches with the same settings are encoded and ranked in one batch (coalesce.py).
        # (Encoding each query before it queued, to overlap encoding with ranking, measured worse at 20
        # clients on 2 cores: ~25% more CPU a request and twice the p99, from batches of ~1 for ranking.)
        return self._coalescer.submit(query, (k, mode, dim, documents, fusion))

    def _search_together(self, queries: list[str], settings: Hashable) -> list[list[SearchResult]]:
        k, mode, dim, documents, fusion = settings  # type: ignore[misc]
        vectors = self._encode_queries(queries) if mode is not SearchMode.BM25 else None
        return self._search_encoded(queries, vectors, k, mode, dim, documents, fusion, ())

    def search_batch(
        self,
        queries: Sequence[str],
        *,
        k: int = 10,
        mode: SearchMode | str = SearchMode.HYBRID,
        dim: int | None = None,
        documents: bool = True,
        fusion: Fusion | str | None = None,
        filters: FilterInput = None,
    ) -> list[list[SearchResult]]:
        """:meth:`search` for many queries at once (queries are encoded in batches)."""
        k, mode, dim, fusion = self._settings(k, mode, dim, fusion)
        queries = self._check_queries(queries)
        parsed = parse_filters(filters)
        if parsed:  # a bad field fails before the model loads
            with self._lock.read():
                check_fields(parsed, self._columns(self._state).fields, where=f"the index at {self.root}")
        vectors = self._encode_queries(queries) if mode is not SearchMode.BM25 else None
        return self._search_encoded(queries, vectors, k, mode, dim, documents, fusion, parsed)

    def _settings(
        self, k: int, mode: SearchMode | str, dim: int | None, fusion: Fusion | str | None
    ) -> tuple[int, SearchMode, int, Fusion]:
        """The options checked (``dim`` against the newest generation, which this reloads if it changed)."""
        k, mode = check_k(k), SearchMode(mode)
        fusion = self.fusion if fusion is None else Fusion(fusion)
        self._refresh()
        return k, mode, check_dim(dim, self.dims), fusion

    def _search_encoded(
        self,
        queries: list[str],
        vectors: np.ndarray | None,
        k: int,
        mode: SearchMode,
        dim: int,
        documents: bool,
        fusion: Fusion,
        filters: tuple[Filter, ...],
    ) -> list[list[SearchResult]]:
        """Rank queries whose vectors are computed (None for BM25) and build their results."""
        with self._lock.read():
            state = self._state
            if not state.doc_index or not queries:
                return [[] for _ in queries]
            where = self._row_filter(state, filters)
            hits = self._rank(state, queries, vectors, k, mode, dim, documents, fusion, where)
            return [self._results(state, h.top(k), q) for h, q in zip(hits, queries, strict=True)]

    def _rank(
        self,
        state: IndexState,
        queries: list[str],
        vectors: np.ndarray | None,
        k: int,
        mode: SearchMode,
        dim: int,
        documents: bool,
        fusion: Fusion,
        where: RowFilter | None = None,
    ) -> list[Hits]:
        depth = max(self.candidates, 3 * k)
        ranked: list[Hits] = [Hits.empty()] * len(queries)
        todo = list(range(len(queries)))  # each query looks deeper alone: its results never depend on its batch
        while True:
            subset = vectors[todo] if vectors is not None else None
            dense = dense_hits(state, subset, depth, dim, k, where) if subset is not None else None
            words = [queries[i] for i in todo]
            lexical = bm25_hits(state, words, depth, where) if mode is not SearchMode.DENSE else None
            deeper = []
            for i, pair in zip(todo, _pairs(dense, lexical, len(todo)), strict=True):
                ranked[i] = self._combine(state, mode, *pair, documents, fusion)
                # Too few documents, although a system returned all the chunks asked for (long
                # documents used up the candidates): look deeper. A system that returned fewer
                # chunks than asked has nothing more to give.
                if len(ranked[i]) < k and any(x is not None and len(x) >= depth for x in pair):
                    deeper.append(i)
            if not (documents and deeper and depth < state.live_rows):
                return ranked
            todo, depth = deeper, depth * 4

    def _combine(
        self,
        state: IndexState,
        mode: SearchMode,
        dense: Hits | None,
        lexical: Hits | None,
        documents: bool,
        fusion: Fusion,
    ) -> Hits:
        if documents:
            dense = by_document(dense, state.row_docs) if dense is not None else None
            lexical = by_document(lexical, state.row_docs) if lexical is not None else None
        if mode is SearchMode.DENSE:
            return dense
        if mode is SearchMode.BM25:
            return lexical
        return fuse(dense, lexical, fusion, weight=self.dense_weight)

    def _results(self, state: IndexState, hits: Hits, query: str) -> list[SearchResult]:
        results = []
        catalog = self._concepts.get(self.root, state.manifest, strict=False)
        pairs = zip(hits.rows.tolist(), hits.scores.tolist(), strict=True)
        for rank, (row, score) in enumerate(pairs, 1):
            chunk = state.chunk(row)
            snippet, highlights = make_snippet(chunk["text"] or chunk.get("title", ""), query)
            results.append(
                SearchResult(
                    doc_id=chunk["doc_id"],
                    score=float(score),
                    rank=rank,
                    title=chunk.get("title", ""),
                    chunk_id=chunk["id"],
                    passage=chunk["text"],
                    snippet=snippet,
                    highlights=highlights,
                    concepts=list(chunk.get("concepts", [])),
                    chunk_concepts=catalog.in_text(chunk["text"]) if catalog is not None else [],
                )
            )
        return results

    # -- documents, add, delete ----------------------------------------------------------------

    def document(self, doc_id: str) -> Document:
        """The stored document ``doc_id``; :class:`UnknownDocumentError` (a KeyError) if absent."""
        self._refresh()
        with self._lock.read():
            state = self._state
            ordinal = state.doc_index.get(doc_id)
            if ordinal is None:
                raise UnknownDocumentError(f"no document {doc_id!r} in the index at {self.root}")
            return state.document(ordinal)

    def add(self, documents: list[Document]) -> int:
        """Add documents, encoding only them; a document whose id is already indexed is replaced.

        Returns the number of documents added (new or replacing). Searches
        running meanwhile see the index before or after the whole update.
        """
        documents = list(documents)
        builder.check_documents(documents, where="add")
        if not documents:
            return 0
        with self._writing() as state:
            manifest = builder.add_documents(self.root, state, documents, self._get_encoder())
            self._publish(state, manifest)
        return len(documents)

    def delete(self, doc_ids: list[str]) -> int:
        """Delete documents by id (nothing is re-encoded); unknown ids are ignored.

        Returns the number of documents deleted.
        """
        if isinstance(doc_ids, str):
            raise SearchOptionError("delete takes a list of document ids, not one string")
        with self._writing() as state:
            ordinals = sorted({state.doc_index[d] for d in doc_ids if d in state.doc_index})
            if not ordinals:
                return 0
            manifest = builder.delete_documents(self.root, state, ordinals)
            self._publish(state, manifest)
        return len(ordinals)

    # -- internals -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _writing(self) -> Iterator[IndexState]:
        """Serialise writers (threads and processes) and start from the newest generation."""
        with self._write_mutex, file_lock(self.root):
            manifest = IndexManifest.read(self.root)
            if manifest != self._state.manifest:  # a new generation, or only a new query encoder (adapt)
                self._swap(IndexState.load(self.root, manifest), manifest_stamp(self.root))
            yield self._state

    def _publish(self, old: IndexState, manifest: IndexManifest) -> None:
        self._swap(IndexState.load(self.root, manifest), manifest_stamp(self.root))
        removed = collect_garbage(self.root, [manifest, old.manifest])
        logger.info(
            "published generation %s of %s (removed %s)", manifest.generation, self.root, removed
        )

    def _swap(self, state: IndexState, stamp: tuple[int, int, int] | None) -> None:
        """Make ``state`` the one searches read (after the searches running now finish).

        When the manifest points at another query encoder (``fieldtune adapt``), that
        encoder is loaded first, outside the lock, and swapped in with the state, so
        searches keep being answered by the old one until then.
        """
        encoder = self._encoder
        if _query_pointer(state.manifest) != _query_pointer(self._state.manifest):
            encoder = query_encoder(self.root, state.manifest) if encoder is not None else None
        with self._lock.write():
            changed = encoder is not self._encoder
            self._state, self._stamp, self._encoder = state, stamp, encoder
        if changed:  # the old encoder's vectors would never be asked for again
            self.query_cache.clear()

    def _refresh(self) -> None:
        """Reload if another process (or Index object) replaced ``index.json``: a new generation, or
        a new query encoder pointer (``fieldtune adapt``, loaded by :meth:`_swap`)."""
        stamp = manifest_stamp(self.root)
        if stamp == self._stamp or stamp is None:
            return
        with self._write_mutex:
            stamp = manifest_stamp(self.root)
            if stamp == self._stamp:
                return
            new_state = load_current(self.root)
            self._swap(new_state, stamp)
            logger.info("reloaded %s at generation %s", self.root, new_state.manifest.generation)

    def _columns(self, state: IndexState) -> MetadataColumns:
        """The documents' metadata of ``state`` (read on the first filtered search of a generation)."""
        cached = self._metadata
        if cached is not None and cached[0] is state:
            return cached[1]
        records = (record.get("metadata") or {} for s in state.store.segments for record in s.documents)
        columns = MetadataColumns(list(records))
        self._metadata = (state, columns)
        return columns

    def _row_filter(self, state: IndexState, filters: tuple[Filter, ...]) -> RowFilter | None:
        """The rows ``filters`` let through in ``state`` (computed when a backend asks), or None."""
        if not filters:
            return None
        columns = self._columns(state)
        return RowFilter(filters, lambda: columns.mask(filters)[state.row_docs] & ~state.deleted)

    @staticmethod
    def _check_queries(queries: Sequence[str]) -> list[str]:
        if isinstance(queries, str):
            raise SearchOptionError("search_batch takes a list of queries, not one string")
        queries = list(queries)
        bad = [i for i, q in enumerate(queries) if not isinstance(q, str)]
        if bad:
            raise SearchOptionError(
                f"queries must be strings; item {bad[0]} is {type(queries[bad[0]]).__name__}"
            )
        return queries

    def _get_encoder(self) -> Any:
        with self._encoder_lock:
            if self._encoder is None:
                self._encoder = query_encoder(self.root, self.manifest)
            return self._encoder

    def _encode_queries(self, queries: list[str]) -> np.ndarray:
        vectors = self._query_embedder().embed(queries)
        return builder.fit_dimension(vectors, self._state.dimension)

    def _query_embedder(self) -> QueryEmbedder:
        """The current query encoder behind the LRU and the few-queries path (query_models.py)."""
        encoder = self._get_encoder()
        embedder = self._embedder
        if embedder is None or embedder.encoder is not encoder:
            embedder = self._embedder = QueryEmbedder(encoder, self.query_cache, self._encoder_lock)
        return embedder


def _query_pointer(manifest: IndexManifest) -> str | None:
    return None if manifest.query_model is None else manifest.query_model.path


def _pairs(
    dense: list[Hits] | None, lexical: list[Hits] | None, n: int
) -> list[tuple[Hits | None, Hits | None]]:
    return [(dense[i] if dense else None, lexical[i] if lexical else None) for i in range(n)]
