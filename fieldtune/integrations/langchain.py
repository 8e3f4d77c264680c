"""A LangChain retriever over a fieldtune index (``pip install 'fieldtune[langchain]'``).

``FieldtuneRetriever(index, k=4, mode="hybrid", filters=["year>=2020"])`` is a
``langchain_core`` ``BaseRetriever``, so it goes wherever LangChain takes one (``invoke``,
``batch``, chains, agents' tools). Each hit becomes a ``Document`` whose ``page_content`` is the
passage fieldtune ranked (the document's best chunk, or the chunk with ``chunks=True``) and whose
``metadata`` holds ``doc_id``, ``chunk_id``, ``score``, ``rank``, ``title``, ``concepts`` (the
document's) and ``chunk_concepts`` (the concept graph's, named in the passage). The order and
the ids are ``Index.search``'s for the same options; ``invoke(query, k=2, filters=...)`` overrides
an option for one call.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fieldtune.errors import MissingExtraError
from fieldtune.integrations.hits import RetrievalOptions, as_index, hit_metadata
from fieldtune.search.filters import FilterInput
from fieldtune.search.index import Index, SearchResult
from fieldtune.search.options import SearchMode

try:
    from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables.config import run_in_executor
    from pydantic import InstanceOf
except ImportError as error:
    raise MissingExtraError(
        f"{error.name or 'langchain_core'} is not installed: pip install 'fieldtune[langchain]'"
    ) from error


class FieldtuneRetriever(BaseRetriever):
    """LangChain's view of :meth:`fieldtune.Index.search` (see the module docstring).

    ``index`` is an opened :class:`~fieldtune.Index` or the path of one; the options are
    ``Index.search``'s, checked here, so a bad one fails before the first question.
    """

    index: InstanceOf[Index]
    options: InstanceOf[RetrievalOptions]

    def __init__(
        self,
        index: Index | str | Path,
        *,
        k: int = 10,
        mode: SearchMode | str = SearchMode.HYBRID,
        dim: int | None = None,
        filters: FilterInput = None,
        chunks: bool = False,
        **fields: Any,
    ) -> None:
        opened = as_index(index)
        options = RetrievalOptions.create(opened, k=k, mode=mode, dim=dim, filters=filters, chunks=chunks)
        super().__init__(index=opened, options=options, **fields)  # fields: LangChain's own (tags, metadata)

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
        mode: SearchMode | str | None = None,
        dim: int | None = None,
        filters: FilterInput = None,
        chunks: bool | None = None,
    ) -> list[Document]:
        options = self.options.with_overrides(self.index, k=k, mode=mode, dim=dim, filters=filters, chunks=chunks)
        return [self._document(result, options.chunks) for result in options.search(self.index, query)]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        """``ainvoke``: the same search in a worker thread (LangChain's default would drop the overrides)."""
        return await run_in_executor(
            None, self._get_relevant_documents, query, run_manager=run_manager.get_sync(), **overrides
        )

    @staticmethod
    def _document(result: SearchResult, chunks: bool) -> Document:
        return Document(
            page_content=result.passage,
            metadata=hit_metadata(result),
            id=result.chunk_id if chunks else result.doc_id,
        )
