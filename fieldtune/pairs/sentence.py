"""Sentence pairs: a sentence -> the rest of its chunk (the sentence removed, so it is not a string match).

The positive is a derived text, not a chunk: its id is
``"<chunk id>~s<sentence index>"`` and its text (title, then the chunk without
the sentence) travels in :attr:`GeneratedPairs.derived_texts`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from fieldtune.chunking import sentence_starts
from fieldtune.hashing import seeded_fraction
from fieldtune.pairs.base import ConceptGraphLike, GeneratedPairs
from fieldtune.pairs.config import PairConfig
from fieldtune.types import Chunk, Pair, PairKind

#: Derived texts (a chunk without one sentence) get ids "<chunk id>~s<sentence index>".
REST_SEPARATOR = "~s"

#: (derived id, sentence, rest of the chunk, title)
_Candidate = tuple[str, str, str, str]


class SentencePairs:
    """Per document, ``max_sentence_pairs_per_doc`` seeded picks among its long-enough sentences."""

    name = "sentence"
    kinds: tuple[PairKind, ...] = (PairKind.SENTENCE,)

    def generate(self, chunks: Sequence[Chunk], graph: ConceptGraphLike, config: PairConfig) -> GeneratedPairs:
        by_doc: dict[str, list[Chunk]] = defaultdict(list)
        for chunk in chunks:
            by_doc[chunk.doc_id].append(chunk)
        pairs, texts = [], {}
        for doc_id, doc_chunks in by_doc.items():
            candidates = [c for chunk in doc_chunks for c in _candidates(chunk, config)]
            candidates.sort(key=lambda c: seeded_fraction(config.seed, c[0]))
            for derived_id, sentence, rest, title in candidates[: config.max_sentence_pairs_per_doc]:
                texts[derived_id] = f"{title} {rest}".strip() if title else rest
                pairs.append(Pair(sentence, derived_id, PairKind.SENTENCE, doc_id))
        return GeneratedPairs(pairs, texts)


def _sentences(text: str) -> list[tuple[int, int]]:
    starts = sentence_starts(text)
    ends = [*starts[1:], len(text)]
    return [(s, e) for s, e in zip(starts, ends, strict=True) if text[s:e].strip()]


def _candidates(chunk: Chunk, config: PairConfig) -> list[_Candidate]:
    """Every sentence of a chunk of two or more sentences that, and whose rest, is long enough."""
    spans = _sentences(chunk.text)
    if len(spans) < 2:
        return []
    found = []
    for index, (start, end) in enumerate(spans):
        sentence = chunk.text[start:end].strip()
        rest = (chunk.text[:start] + chunk.text[end:]).strip()
        if len(sentence.split()) >= config.min_sentence_words and len(rest.split()) >= config.min_rest_words:
            found.append((f"{chunk.id}{REST_SEPARATOR}{index}", sentence, rest, chunk.title))
    return found
