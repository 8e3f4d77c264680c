"""What the LangChain and LlamaIndex retrievers share: one set of checked options and a hit's metadata.

The options are checked when a retriever is made (a misspelt mode or a bad ``k`` fails there, with
:class:`~fieldtune.search.options.SearchOptionError` listing the allowed values, not at the first
question a chain asks), and a search runs exactly ``Index.search`` with them, so a framework sees
fieldtune's top ``k`` unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldtune.search.filters import Filter, FilterInput, parse_filters
from fieldtune.search.index import Index, SearchResult
from fieldtune.search.options import SearchMode, SearchOptionError, check_dim, check_k

#: Metadata keys of a hit that are bookkeeping (shown to neither an LLM nor an embedding model by LlamaIndex).
BOOKKEEPING_KEYS = ("doc_id", "chunk_id", "score", "rank", "concepts", "chunk_concepts")


def as_index(index: Index | str | Path) -> Index:
    """An opened index: ``index`` itself, or the index directory it names."""
    if isinstance(index, Index):
        return index
    if isinstance(index, (str, Path)):
        return Index.open(index)
    raise SearchOptionError(f"index must be a fieldtune Index or the path of one, not {type(index).__name__}")


@dataclass(frozen=True)
class RetrievalOptions:
    """How a retriever searches: ``Index.search``'s options, checked against the index once.

    ``chunks=True`` ranks chunks instead of documents (``documents=False`` in ``Index.search``).
    """

    k: int = 10
    mode: SearchMode = SearchMode.HYBRID
    dim: int | None = None
    filters: tuple[Filter, ...] = ()
    chunks: bool = False

    @classmethod
    def create(
        cls,
        index: Index,
        *,
        k: int = 10,
        mode: SearchMode | str = SearchMode.HYBRID,
        dim: int | None = None,
        filters: FilterInput = None,
        chunks: bool = False,
    ) -> RetrievalOptions:
        """Options checked against ``index`` (its allowed dimensions); a bad one raises SearchOptionError."""
        if not isinstance(chunks, bool):
            raise SearchOptionError(f"chunks must be True or False (got {chunks!r})")
        if dim is not None:
            check_dim(dim, index.dims)
        return cls(k=check_k(k), mode=SearchMode(mode), dim=dim, filters=parse_filters(filters), chunks=chunks)

    def with_overrides(self, index: Index, **overrides: Any) -> RetrievalOptions:
        """These options with the ones given (not None) replaced, checked again."""
        given = {name: value for name, value in overrides.items() if value is not None}
        if not given:
            return self
        current = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        return RetrievalOptions.create(index, **{**current, **given})

    def search(self, index: Index, query: str) -> list[SearchResult]:
        """``Index.search`` with these options: fieldtune's own ranking, nothing re-ordered or dropped."""
        if not isinstance(query, str):
            raise SearchOptionError(f"the query must be a string, not {type(query).__name__}")
        return index.search(
            query,
            k=self.k,
            mode=self.mode,
            dim=self.dim,
            documents=not self.chunks,
            filters=list(self.filters) or None,
        )


def hit_metadata(result: SearchResult) -> dict[str, Any]:
    """A hit's metadata as plain JSON values: ids, score, rank, title and concepts (document's and graph's)."""
    return {
        "doc_id": result.doc_id,
        "chunk_id": result.chunk_id,
        "score": result.score,
        "rank": result.rank,
        "title": result.title,
        "concepts": list(result.concepts),
        "chunk_concepts": [concept.name for concept in result.chunk_concepts],
    }
