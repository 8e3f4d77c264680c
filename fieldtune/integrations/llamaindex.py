"""A LlamaIndex retriever over a fieldtune index (``pip install 'fieldtune[llamaindex]'``).

``FieldtuneRetriever(index, k=4, mode="hybrid", filters=["year>=2020"])`` is a
``llama_index.core`` ``BaseRetriever``: ``retrieve(query)`` answers ``NodeWithScore`` objects,
and ``RetrieverQueryEngine.from_args(retriever, llm=...)`` builds a query engine on it. Each
node is a ``TextNode`` holding the passage fieldtune ranked (the document's best chunk, or the
chunk with ``chunks=True``), with the chunk id as node id, the document as its source
(``node.ref_doc_id``), fieldtune's score, and metadata ``doc_id``, ``chunk_id``, ``score``,
``rank``, ``title``, ``concepts`` and ``chunk_concepts``. Only ``title`` is shown to an LLM with
the passage; the rest is bookkeeping. The order and the ids are ``Index.search``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fieldtune.errors import MissingExtraError
from fieldtune.integrations.hits import BOOKKEEPING_KEYS, RetrievalOptions, as_index, hit_metadata
from fieldtune.search.filters import FilterInput
from fieldtune.search.index import Index, SearchResult
from fieldtune.search.options import SearchMode

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeRelationship, NodeWithScore, QueryBundle, RelatedNodeInfo, TextNode
except ImportError as error:
    raise MissingExtraError(
        f"{error.name or 'llama_index.core'} is not installed: pip install 'fieldtune[llamaindex]'"
    ) from error


class FieldtuneRetriever(BaseRetriever):
    """LlamaIndex's view of :meth:`fieldtune.Index.search` (see the module docstring).

    ``index`` is an opened :class:`~fieldtune.Index` or the path of one; the options are
    ``Index.search``'s, checked here, so a bad one fails before the first question.
    ``settings`` go to LlamaIndex's ``BaseRetriever`` (``callback_manager``, ``verbose``).
    """

    def __init__(
        self,
        index: Index | str | Path,
        *,
        k: int = 10,
        mode: SearchMode | str = SearchMode.HYBRID,
        dim: int | None = None,
        filters: FilterInput = None,
        chunks: bool = False,
        **settings: Any,
    ) -> None:
        self.index = as_index(index)
        self.options = RetrievalOptions.create(self.index, k=k, mode=mode, dim=dim, filters=filters, chunks=chunks)
        super().__init__(**settings)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return [_node(result) for result in self.options.search(self.index, query_bundle.query_str)]


def _node(result: SearchResult) -> NodeWithScore:
    node = TextNode(
        id_=result.chunk_id,
        text=result.passage,
        metadata=hit_metadata(result),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=result.doc_id)},
        excluded_llm_metadata_keys=list(BOOKKEEPING_KEYS),
        excluded_embed_metadata_keys=list(BOOKKEEPING_KEYS),
    )
    return NodeWithScore(node=node, score=result.score)
