"""From candidates to scored terms: variant grouping, corpus statistics, merging.

1. Candidates are grouped by variant key (:func:`~fieldtune.concepts.text.term_key`):
   plural, case, hyphen/space/joined spellings and accents fall together.
2. Terms in fewer than ``min_df`` or more than ``max_df`` of the documents are
   dropped, as are single words that are mostly capitalised (names, not
   concepts) and fragments: terms whose documents mostly (80%) contain one
   longer term that contains them ("partial differential"). The score is
   ``log2(1 + words) * sqrt(df') * cohesion * (0.5 + central share)``:

   - ``df'`` is the C-value document frequency: df minus the mean df of the
     longer terms containing the term; single words count half;
   - ``cohesion`` says how much more alike the term's documents are than two
     random ones (:mod:`~fieldtune.concepts.specificity`);
   - ``central share`` is the fraction of its documents where the term is
     central (in the title or first sentence, or mentioned twice), smoothed
     as ``(central + 1) / (df + 2)``.

   Recurring, multi-word, topical terms that documents are *about* ("Lie
   algebra") rank above phrases used in passing ("numerical experiments").
3. Near-duplicates are merged by embedding similarity of their names, but only
   when the names are also near-identical strings: the same number of words,
   each pair equal or within one edit (two from 8 letters, none below 5:
   "colouring"/"coloring", "generalised"/"generalized", not "Hall"/"Hill"),
   or the same words in another order.
   Similarity alone would merge a term with its generalisation ("symmetric
   function" and "quasi-symmetric function" are close in embedding space). The
   lower-scored term becomes an alias of the higher-scored one.

A group's canonical name is its most frequent spelling (ties: the singular,
then the shorter), lower-cased word by word unless that word is mostly
capitalised where it does not start a sentence ("Hall polynomial").
"""

from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from fieldtune.chunking import sentence_starts
from fieldtune.concepts.extractors import TermCandidate
from fieldtune.concepts.specificity import relative_cohesion
from fieldtune.concepts.text import fold, term_key, tokenize
from fieldtune.types import Chunk

logger = logging.getLogger("fieldtune.concepts")

SINGLE_WORD_WEIGHT = 0.5
FRAGMENT_SHARE = 0.8
CENTRAL_FLOOR = 0.5
MAX_EDITS = 2


class WordCase:
    """How each word is written where it does not start a sentence, across the corpus."""

    def __init__(self) -> None:
        self.forms: dict[str, Counter[str]] = {}

    def add(self, word: str) -> None:
        self.forms.setdefault(word.lower(), Counter())[word] += 1

    def mostly_capitalised(self, word: str) -> bool:
        forms = self.forms.get(word, Counter())
        capitalised = sum(count for form, count in forms.items() if not form.islower())
        return capitalised * 2 > sum(forms.values())

    def display(self, word: str) -> str:
        """The most common capitalised form of a lower-case ``word``."""
        forms = [
            (count, form)
            for form, count in self.forms.get(word, Counter()).items()
            if not form.islower()
        ]
        return max(forms)[1] if forms else word[:1].upper() + word[1:]


@dataclass
class Term:
    """A group of surface variants sharing a key, with its corpus statistics."""

    key: str
    spellings: Counter[str] = field(default_factory=Counter)  # lower-cased surface -> count
    capitals: dict[str, list[int]] = field(
        default_factory=dict
    )  # spelling -> per-word capitalised count
    uppers: dict[str, list[int]] = field(
        default_factory=dict
    )  # spelling -> per-word countable occurrences
    case: WordCase = field(default_factory=WordCase, repr=False)  # shared by all terms of a corpus
    mentions: dict[str, set[int]] = field(
        default_factory=dict
    )  # doc id -> character offsets in the doc
    leading: set[str] = field(default_factory=set)  # docs whose first sentence has it
    titled: set[str] = field(default_factory=set)  # docs whose title has it
    hints: list[tuple[str, str]] = field(default_factory=list)  # (chunk id, hint)
    score: float = 0.0
    merged: list[Term] = field(default_factory=list)  # near-duplicates folded in

    @property
    def docs(self) -> set[str]:
        return set(self.mentions)

    @property
    def df(self) -> int:
        """Document frequency."""
        return len(self.mentions)

    @property
    def central_docs(self) -> set[str]:
        """Documents where the term is central: in the title or first sentence, or said twice."""
        return (
            {d for d, positions in self.mentions.items() if len(positions) > 1}
            | self.leading
            | self.titled
        )

    def absorb(self, other: Term) -> None:
        """Fold a near-duplicate's occurrences into this term."""
        self.merged.append(other)
        self.merged.extend(other.merged)
        for doc, positions in other.mentions.items():
            self.mentions.setdefault(doc, set()).update(positions)
        self.leading |= other.leading
        self.titled |= other.titled

    @property
    def spelling(self) -> str:
        """The most frequent spelling; ties go to the singular form, then the shorter one."""
        return min(
            self.spellings,
            key=lambda s: (-self.spellings[s], fold(s.replace(" ", "")) != self.key, len(s), s),
        )

    @property
    def words(self) -> list[str]:
        return self.spelling.split()

    @property
    def name(self) -> str:
        """The canonical name: the spelling, capitalised word by word where the corpus does."""
        return self._cased(self.spelling)

    def aliases(self) -> list[str]:
        """Other spellings of this term and of the terms merged into it (canonical case)."""
        seen = {self.name.lower()}
        out = []
        for term in [self, *self.merged]:
            for spelling in sorted(term.spellings, key=lambda s: (-term.spellings[s], s)):
                if spelling not in seen:
                    seen.add(spelling)
                    out.append(term._cased(spelling))
        return out

    def _cased(self, spelling: str) -> str:
        """``spelling`` with each word capitalised where most of its non-initial occurrences are
        (in this term, or anywhere in the corpus when the term only starts sentences)."""
        caps, counts = self.capitals[spelling], self.uppers[spelling]
        words = []
        for i, word in enumerate(spelling.split()):
            upper = caps[i] * 2 > counts[i] if counts[i] else self.case.mostly_capitalised(word)
            words.append(self.case.display(word) if upper else word)
        return " ".join(words)

    def mostly_lower(self) -> bool:
        """Whether the first word is mostly written in lower case (names are not)."""
        counts = sum(c[0] for c in self.uppers.values())
        if counts:
            return sum(c[0] for c in self.capitals.values()) * 2 <= counts
        return not self.case.mostly_capitalised(self.words[0])

    def keys(self) -> set[str]:
        """Variant keys of this term and of the terms merged into it."""
        return {self.key, *(term.key for term in self.merged)}


def _sentence_initial(text: str, start: int) -> bool:
    """Whether the word at ``start`` begins a sentence (its capital tells nothing)."""
    i = start - 1
    while i >= 0 and text[i].isspace():
        i -= 1
    return i < 0 or text[i] in ".!?:"


def _count_case(term: Term, spelling: str, words: Sequence[str], initial: bool) -> None:
    caps = term.capitals.setdefault(spelling, [0] * len(words))
    counts = term.uppers.setdefault(spelling, [0] * len(words))
    for i, word in enumerate(words):
        if i == 0 and initial:
            continue
        counts[i] += 1
        term.case.add(word)
        if word[:1].isupper():
            caps[i] += 1


def group_candidates(
    candidates: Sequence[TermCandidate], chunks: Sequence[Chunk]
) -> dict[str, Term]:
    """Group candidates by variant key, counting spellings, capitalisation and occurrences."""
    by_id = {chunk.id: chunk for chunk in chunks}
    first_sentence_end = {
        c.id: (sentence_starts(c.text) + [len(c.text)])[1] for c in chunks if c.index == 0
    }
    terms: dict[str, Term] = {}
    case = WordCase()
    parsed_surfaces: dict[str, tuple[str, list[str]]] = {}
    for serial, candidate in enumerate(candidates):
        chunk = by_id.get(candidate.chunk_id)
        parsed = parsed_surfaces.get(candidate.surface)
        if parsed is None:
            words = [t.text for t in tokenize(candidate.surface)]
            parsed = parsed_surfaces[candidate.surface] = (term_key(words), words)
        key, words = parsed
        if chunk is None or not key:
            continue
        term = terms.get(key)
        if term is None:
            term = terms[key] = Term(key, case=case)
        spelling = " ".join(words).lower()
        term.spellings[spelling] += 1
        known = candidate.start >= 0
        _count_case(term, spelling, words, known and _sentence_initial(chunk.text, candidate.start))
        # Overlapping chunks see the same mention twice: identify it by its offset in the document.
        term.mentions.setdefault(chunk.doc_id, set()).add(
            chunk.start + candidate.start if known else -1 - serial
        )
        if known and candidate.start < first_sentence_end.get(chunk.id, -1):
            term.leading.add(chunk.doc_id)
        if candidate.hint:
            term.hints.append((candidate.chunk_id, candidate.hint))
    _mark_titles(terms, chunks)
    return terms


def _mark_titles(terms: Mapping[str, Term], chunks: Sequence[Chunk], max_words: int = 8) -> None:
    """Record which terms occur in each document's title."""
    seen: set[str] = set()
    for chunk in chunks:
        if chunk.doc_id in seen or not chunk.title:
            continue
        seen.add(chunk.doc_id)
        words = [t.text for t in tokenize(chunk.title)]
        for i in range(len(words)):
            for j in range(i + 1, min(i + max_words, len(words)) + 1):
                term = terms.get(term_key(words[i:j]))
                if term is not None:
                    term.titled.add(chunk.doc_id)


def _contained_keys(words: Sequence[str]) -> set[str]:
    """Keys of the proper contiguous sub-phrases of ``words``."""
    n = len(words)
    return {term_key(words[i:j]) for i in range(n) for j in range(i + 1, n + 1) if j - i < n}


def _fragments(terms: Sequence[Term]) -> set[str]:
    """Keys of terms that mostly occur inside one longer term ("partial differential")."""
    by_key = {term.key: term for term in terms}
    fragments = set()
    for term in terms:
        if len(term.words) > 1:
            for key in _contained_keys(term.words):
                inner = by_key.get(key)
                if inner is not None and term.df >= FRAGMENT_SHARE * inner.df:
                    fragments.add(key)
    return fragments


def score_terms(
    terms: Mapping[str, Term], chunks: Sequence[Chunk], *, min_df: int, max_df_docs: int
) -> list[Term]:
    """Filter and score terms (module docstring); the kept terms, best first."""
    frequent = [
        t for t in terms.values() if min_df <= t.df and (len(t.words) > 1 or t.mostly_lower())
    ]
    containers: dict[str, list[int]] = defaultdict(list)
    for term in frequent:
        if len(term.words) > 1:
            for key in _contained_keys(term.words):
                containers[key].append(term.df)
    fragments = _fragments(frequent)
    kept, effective = [], []
    for term in frequent:
        nested = containers.get(term.key)
        df = term.df - (sum(nested) / len(nested) if nested else 0.0)
        if term.df <= max_df_docs and df > 0 and term.key not in fragments:
            kept.append(term)
            effective.append(df)
    cohesion = relative_cohesion([term.docs for term in kept], chunks)
    for term, df, specific in zip(kept, effective, cohesion, strict=True):
        n_words = len(term.words)
        weight = math.log2(1 + n_words) * (SINGLE_WORD_WEIGHT if n_words == 1 else 1.0)
        central = (len(term.central_docs & term.mentions.keys()) + 1) / (term.df + 2)
        term.score = weight * math.sqrt(df) * float(specific) * (CENTRAL_FLOOR + central)
    kept.sort(key=lambda t: (-t.score, t.key))
    return kept


def edit_distance(a: str, b: str, limit: int = MAX_EDITS) -> int:
    """Levenshtein distance, stopping early once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        if min(current) > limit:
            return limit + 1
        previous = current
    return previous[-1]


def _allowed_edits(x: str, y: str) -> int:
    """Spelling variation tolerated between two words: none below 5 letters ("Hall"/"Hill")."""
    shorter = min(len(x), len(y))
    return 0 if shorter < 5 else 1 if shorter < 8 else MAX_EDITS


def near_identical(a: Sequence[str], b: Sequence[str]) -> bool:
    """Same words up to order, or word by word within a few edits (:func:`_allowed_edits`)."""
    fa, fb = [fold(w) for w in a], [fold(w) for w in b]
    if len(fa) != len(fb):
        return False
    if sorted(fa) == sorted(fb):
        return True
    return all(x == y or edit_distance(x, y) <= _allowed_edits(x, y) for x, y in zip(fa, fb, strict=True))


def merge_near_duplicates(
    terms: Sequence[Term], vectors: np.ndarray, threshold: float
) -> tuple[list[Term], list[int]]:
    """Fold each term into the best-scored earlier term it near-duplicates.

    ``terms`` are sorted best first and ``vectors`` are their unit-norm name
    embeddings. Returns the surviving terms (re-sorted by score) and, for each,
    the row of its vector.
    """
    owner = list(range(len(terms)))
    sims = vectors @ vectors.T if len(terms) else np.zeros((0, 0))
    for j in range(1, len(terms)):
        for i in np.flatnonzero(sims[j, :j] >= threshold):
            if owner[i] == i and near_identical(terms[i].words, terms[j].words):
                owner[j] = int(i)
                terms[i].absorb(terms[j])
                break
    rows = [i for i in range(len(terms)) if owner[i] == i]
    rows.sort(key=lambda i: (-terms[i].score, terms[i].key))
    return [terms[i] for i in rows], rows
