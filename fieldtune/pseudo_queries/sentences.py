"""Sentences (inverse cloze): one seeded sentence of each chunk, its source document excluded from the candidates.

A sentence is found by string match in its own document, so training towards
that document teaches nothing a query would need: the query records its
document (``exclude_doc_id``) and the teacher drops that document's chunks
(:func:`fieldtune.pseudo_queries.exclude.drop_source_documents`).
"""

from __future__ import annotations

from collections.abc import Sequence

from fieldtune.chunking import sentence_starts
from fieldtune.hashing import seeded_fraction
from fieldtune.pairs.base import ConceptGraphLike
from fieldtune.pseudo_queries.base import Candidate, PseudoQueryConfig
from fieldtune.types import Chunk, PseudoQuery


class SentenceQueries:
    """Per chunk, a seeded choice among its sentences of ``min_sentence_words``..``max_sentence_words`` words."""

    name = "sentences"

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PseudoQueryConfig) -> list[Candidate]:
        found = []
        for chunk in chunks:
            eligible = [(index, sentence) for index, sentence in enumerate(sentences(chunk.text))
                        if config.min_sentence_words <= len(sentence.split()) <= config.max_sentence_words]
            if not eligible:
                continue
            index, sentence = min(eligible, key=lambda item: seeded_fraction(config.seed, f"{chunk.id}|{item[0]}"))
            query = PseudoQuery(f"{self.name}:{chunk.id}|{index}", sentence, self.name, exclude_doc_id=chunk.doc_id)
            found.append(Candidate(chunk.doc_id, query))
        return found


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, whitespace collapsed, empty ones dropped."""
    starts = sentence_starts(text)
    ends = [*starts[1:], len(text)]
    spans = (" ".join(text[start:end].split()) for start, end in zip(starts, ends, strict=True))
    return [sentence for sentence in spans if sentence]
