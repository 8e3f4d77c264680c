"""Where each concept occurs, where it is central, and how the corpus describes it.

Occurrences are found by variant key (:class:`~fieldtune.concepts.text.TermMatcher`):
case-insensitive, whole words, any spelling of the concept or its aliases. A
concept in a document's title occurs in every chunk of that document (chunks
carry their title). A chunk is *central* for a concept when the concept is in
the document's title, is mentioned at least twice in the chunk, or is
mentioned in the document's first sentence; a concept with no such chunk gets
its most-mentioning chunks instead (at most ``max_central_fallback``).

The description is a defining sentence where one exists, by preference:
"X is defined as ...", "X is a/an/the ...", "we call ... X" / "called X" /
"known as X", "X are ...", "X refers to / denotes / means ...", "X, which is
...", with X near the start of the sentence for the "X is/are" forms. Ties go
to the chunk with more mentions, then corpus order. Without one, the
extractor's hint (an LLM extractor's), else the first sentence that mentions
the concept in its most central chunk (preferring one without LaTeX). Descriptions are cut to
``description_words`` words; ``description_chunk`` names the source chunk.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from fieldtune.concepts.config import ConceptConfig
from fieldtune.concepts.terms import Term
from fieldtune.concepts.text import (
    Mention,
    TermMatcher,
    content_word_before,
    sentence_spans,
    slugify,
    span_index,
    tokenize,
    truncate_words,
)
from fieldtune.types import Chunk, Concept

_PAREN = r"(?:\s*\([^)]{0,60}\))?"
_NOT_DEFINING = (
    r"(?:consequence|result|special\s+case|generali[sz]ation|extension|key|crucial|main|major|powerful|important"
    r"|natural\s+(?:question|problem)|problem|question|topic|subject|challenge|difficult|long-standing|tool"
    r"|corollary|conjecture|theorem)\b"
)
#: Words after "X are" that describe what is done with X, not what X is.
_NOT_AFTER_ARE = (
    r"(?:not|also|often|usually|then|thus|therefore|of|in|on|at|by|for|to|very|well|still|now|here|"
    r"known|given|shown|seen|made|chosen|taken|written|drawn|found|built|done|set|put|run|proven|"
    r"[a-z]+ed)\b"
)
#: A few words naming the thing between "we call"/"called" and the term, but no clause.
_FILLER = r"(?:(?!(?:for|of|in|to|on|with|by|and|or|if|that|when|whether|is|are)\b)[^\s,;.]+\s+)"
#: (rank, pattern on the text right after the mention, needs the term as subject);
#: a lower rank is better.
_AFTER = [
    (
        0,
        re.compile(_PAREN + r"\s*,?\s*(?:is|are)\s+(?:defined|introduced)\s+(?:as|to\s+be|by)\b"),
        True,
    ),
    (
        1,
        re.compile(_PAREN + r"\s*(?:is|are)\s+(?:a|an|the|any)\s+(?!" + _NOT_DEFINING + r")\w"),
        True,
    ),
    (3, re.compile(_PAREN + r"\s*are\s+(?!" + _NOT_AFTER_ARE + r")[a-z]"), True),
    (3, re.compile(_PAREN + r"\s*,?\s*(?:refers?\s+to|denotes?|means)\b"), True),
    (
        4,
        re.compile(
            r"\s*,\s*(?:which|that)\s+(?:is|are)\s+(?:a|an|the)\s+(?!" + _NOT_DEFINING + r")\w"
        ),
        False,
    ),
]
#: (rank, pattern on the sentence text right before the mention).
_BEFORE = [
    (2, re.compile(r"\b[Ww]e\s+call\s+" + _FILLER + r"{0,4}$")),
    (2, re.compile(r"\b(?:[Cc]alled|[Tt]ermed|[Nn]amed)\s+" + _FILLER + r"{0,2}$")),
    (2, re.compile(r"\b(?:known|referred\s+to)\s+as\s+(?:an?\s+|the\s+)?$")),
    (2, re.compile(r"\b[Ww]e\s+define\s+(?:an?\s+|the\s+)?$")),
]
_SUBJECT_WORDS = 4
_NOT_SUBJECT = frozenset(
    {
        "prove",
        "proves",
        "show",
        "shows",
        "proved",
        "shown",
        "conjecture",
        "if",
        "whether",
        "when",
        "then",
    }
)


@dataclass
class Occurrences:
    """Mentions per chunk (aligned with the chunk list) and concepts per document title."""

    mentions: list[list[Mention]]
    title_concepts: dict[str, set[int]] = field(default_factory=dict)

    def restrict(self, kept: Sequence[int]) -> Occurrences:
        """The occurrences of concepts ``kept`` only, renumbered by their position in ``kept``."""
        new = {old: n for n, old in enumerate(kept)}
        return Occurrences(
            [
                [Mention(new[m.concept], m.start, m.end) for m in ms if m.concept in new]
                for ms in self.mentions
            ],
            {doc: {new[c] for c in cs if c in new} for doc, cs in self.title_concepts.items()},
        )


def find_occurrences(
    chunks: Sequence[Chunk], terms: Sequence[Term], max_tokens: int
) -> Occurrences:
    """All mentions of ``terms`` (by any variant key) in the chunk texts and titles."""
    keys: dict[str, int] = {}
    for index, term in enumerate(terms):
        for key in sorted(term.keys()):
            keys.setdefault(key, index)
    matcher = TermMatcher(keys, max_tokens)
    mentions = [matcher.find(tokenize(chunk.text)) for chunk in chunks]
    titles: dict[str, set[int]] = {}
    for chunk in chunks:
        if chunk.doc_id not in titles:
            titles[chunk.doc_id] = (
                {m.concept for m in matcher.find(tokenize(chunk.title))} if chunk.title else set()
            )
    return Occurrences(mentions, titles)


def _subject_position(before: str) -> bool:
    words = before.split()
    return len(words) <= _SUBJECT_WORDS and not any(
        w.lower().strip(",") in _NOT_SUBJECT for w in words
    )


def defining_rank(sentence: str, start: int, end: int) -> int | None:
    """How well ``sentence`` defines the term at ``sentence[start:end]`` (None: not at all)."""
    before, after = sentence[:start], sentence[end : end + 120]
    best = None
    subject = _subject_position(before) and not content_word_before(sentence, start)
    for rank, pattern, needs_subject in _AFTER:
        if (subject or not needs_subject) and pattern.match(after):
            best = rank
            break
    for rank, pattern in _BEFORE:
        if (best is None or rank < best) and pattern.search(before[-80:]):
            best = rank
            break
    return best


_SentenceKey = tuple[int, int, int, int]


@dataclass
class _Tally:
    """What one concept's pass over the mentions collected."""

    counts: dict[int, int] = field(
        default_factory=lambda: defaultdict(int)
    )  # chunk index -> mentions
    first_sentence: set[int] = field(default_factory=set)  # chunk indices
    definition: tuple[_SentenceKey, str] | None = None  # best defining sentence and its ranking key
    fallback: tuple[_SentenceKey, str] | None = None  # best plain sentence mentioning the concept

    def offer(self, slot: str, key: _SentenceKey, sentence: str) -> None:
        current = getattr(self, slot)
        if current is None or key < current[0]:
            setattr(self, slot, (key, sentence))


def _has_markup(sentence: str) -> int:
    return int("\\" in sentence or sentence.count("$") > 2)


def _tally(chunks: Sequence[Chunk], occurrences: Occurrences, n_terms: int) -> list[_Tally]:
    tallies = [_Tally() for _ in range(n_terms)]
    for index, (chunk, mentions) in enumerate(zip(chunks, occurrences.mentions, strict=True)):
        if not mentions:
            continue
        per_chunk: dict[int, int] = defaultdict(int)
        for mention in mentions:
            per_chunk[mention.concept] += 1
            tallies[mention.concept].counts[index] += 1
        spans = sentence_spans(chunk.text)
        for mention in mentions:
            tally = tallies[mention.concept]
            s0, s1 = spans[span_index(spans, mention.start)]
            sentence = chunk.text[s0:s1]
            if chunk.index == 0 and s0 == 0:
                tally.first_sentence.add(index)
            tally.offer(
                "fallback",
                (-per_chunk[mention.concept], _has_markup(sentence), index, mention.start),
                sentence,
            )
            rank = defining_rank(sentence, mention.start - s0, mention.end - s0)
            if rank is not None:
                tally.offer(
                    "definition",
                    (rank, -per_chunk[mention.concept], index, mention.start),
                    sentence,
                )
    return tallies


class ConceptTable(NamedTuple):
    """What :func:`build_concepts` found: concepts, their positions in the term list,
    and how many have a defining sentence."""

    concepts: list[Concept]
    kept: list[int]
    defined: int


def build_concepts(
    chunks: Sequence[Chunk], terms: Sequence[Term], occurrences: Occurrences, config: ConceptConfig
) -> ConceptTable:
    """One :class:`Concept` per term that occurs somewhere, in the order of ``terms``."""
    tallies = _tally(chunks, occurrences, len(terms))
    chunks_of_doc: dict[str, list[int]] = defaultdict(list)
    for index, chunk in enumerate(chunks):
        chunks_of_doc[chunk.doc_id].append(index)
    in_title: dict[int, list[str]] = defaultdict(list)
    for doc_id, concept_set in occurrences.title_concepts.items():
        for concept in concept_set:
            in_title[concept].append(doc_id)
    concepts: list[Concept] = []
    kept: list[int] = []
    used_ids: set[str] = set()
    for number, (term, tally) in enumerate(zip(terms, tallies, strict=True)):
        title_chunks = {i for doc in in_title.get(number, ()) for i in chunks_of_doc[doc]}
        present = sorted(set(tally.counts) | title_chunks)
        if not present:
            continue
        central = [
            i
            for i in present
            if i in title_chunks or tally.counts.get(i, 0) >= 2 or i in tally.first_sentence
        ]
        if not central:
            ranked = sorted(present, key=lambda i: (-tally.counts.get(i, 0), i))
            central = sorted(ranked[: max(1, config.max_central_fallback)])
        description, source = _describe(term, tally, chunks, config.description_words)
        kept.append(number)
        concepts.append(
            Concept(
                id=_unique_id(slugify(term.name), used_ids),
                name=term.name,
                score=round(term.score, 4),
                aliases=tuple(term.aliases()),
                description=description,
                description_chunk=source,
                doc_ids=tuple(dict.fromkeys(chunks[i].doc_id for i in present)),
                chunk_ids=tuple(chunks[i].id for i in present),
                central_chunk_ids=tuple(chunks[i].id for i in central),
            )
        )
    return ConceptTable(concepts, kept, sum(1 for n in kept if tallies[n].definition is not None))


def _describe(term: Term, tally: _Tally, chunks: Sequence[Chunk], limit: int) -> tuple[str, str]:
    """(description, source chunk id) following the module docstring's preferences."""
    if tally.definition is not None:
        (_, _, index, _), sentence = tally.definition
        return truncate_words(sentence, limit), chunks[index].id
    if term.hints:
        chunk_id, hint = min(term.hints)
        return truncate_words(hint, limit), chunk_id
    if tally.fallback is not None:
        (_, _, index, _), sentence = tally.fallback
        return truncate_words(sentence, limit), chunks[index].id
    return "", ""


def _unique_id(slug: str, used: set[str]) -> str:
    candidate, n = slug, 2
    while candidate in used:
        candidate, n = f"{slug}-{n}", n + 1
    used.add(candidate)
    return candidate
