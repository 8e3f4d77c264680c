"""Title pairs: a document's title -> its first chunks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from fieldtune.pairs.base import ConceptGraphLike, GeneratedPairs
from fieldtune.pairs.config import PairConfig
from fieldtune.types import Chunk, Pair, PairKind


class TitlePairs:
    """The title -> each of the first ``max_title_pairs_per_doc`` chunks with text (grouped by document)."""

    name = "title"
    kinds: tuple[PairKind, ...] = (PairKind.TITLE,)

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PairConfig) -> GeneratedPairs:
        by_doc: dict[str, list[Chunk]] = defaultdict(list)
        for chunk in chunks:
            if chunk.title.strip() and chunk.text.strip():
                by_doc[chunk.doc_id].append(chunk)
        pairs = []
        for doc_id, doc_chunks in by_doc.items():
            title = doc_chunks[0].title.strip()
            for chunk in doc_chunks[: config.max_title_pairs_per_doc]:
                pairs.append(Pair(title, chunk.id, PairKind.TITLE, doc_id))
        return GeneratedPairs(pairs)
