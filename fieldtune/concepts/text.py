"""Text helpers shared by the concept stage: tokens, variant keys, word lists, matching.

Every step that looks for a term in text (candidate extraction, counting
occurrences, finding descriptions and relation sentences) goes through
:func:`tokenize` and :func:`term_key`, so a term found by one step is found by
all of them.

A *token* is a run of letters, possibly joined by hyphens or apostrophes
("quasi-polynomial", "Maxwell's", "Erdős–Rényi"). Everything else (digits,
punctuation, LaTeX) separates *segments*; a term never spans two segments.
LaTeX math (``$...$``, ``\\(...\\)``, ``\\[...\\]``) and backslash commands are
masked before tokenizing, keeping character offsets intact.

The *key* of a term identifies its lexical variants: lower case, accents
removed, hyphens, spaces and apostrophes dropped, a possessive "'s" dropped,
and the last word singularised, so "Kostka polynomials", "Kostka polynomial"
and "quasi polynomial" / "quasi-polynomial" / "quasipolynomial" each share a key.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fieldtune.chunking import sentence_starts

DATA_DIR = Path(__file__).parent

_LATEX = re.compile(
    r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+\*?|\\.|[{}^_~]", re.S
)
_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"[^\W\d_]+(?:['’\-‐–][^\W\d_]+)*")
_LEADING = "|([{<\"'“‘«"
_TRAILING = "|.,;:!?)]}>\"'”’»"
_JOINERS = re.compile(r"['’\-‐–]")
_POSSESSIVE = re.compile(r"['’]s$")
#: Words ending in "ly" that are not adverbs (adverbs never belong to a concept).
_LY_NOUNS = frozenset(
    {
        "family",
        "anomaly",
        "assembly",
        "monopoly",
        "butterfly",
        "supply",
        "poly",
        "italy",
        "reply",
        "rely",
    }
)


@dataclass(frozen=True)
class Token:
    """A word of a text: its characters, span, and the segment it belongs to."""

    text: str
    start: int
    end: int
    segment: int


@dataclass(frozen=True)
class Mention:
    """An occurrence of concept number ``concept`` at ``text[start:end]``."""

    concept: int
    start: int
    end: int


def _read_words(name: str) -> dict[str, frozenset[str]]:
    """Read a word list: whitespace-separated words, ``#`` comments, ``[section]`` headers."""
    sections: dict[str, set[str]] = {"": set()}
    current = ""
    for line in (DATA_DIR / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, set())
        elif line:
            sections[current].update(word.lower() for word in line.split())
    return {key: frozenset(words) for key, words in sections.items()}


@functools.lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    """Words that never belong to a concept name (``stopwords.txt``)."""
    return _read_words("stopwords.txt")[""]


@functools.lru_cache(maxsize=1)
def generic_words() -> tuple[frozenset[str], frozenset[str]]:
    """(generic nouns, generic nouns that may not start a concept) from ``generic_words.txt``."""
    sections = _read_words("generic_words.txt")
    no_start = sections.get("no-start", frozenset())
    return sections[""] | no_start, no_start


@functools.lru_cache(maxsize=1)
def irregular_plurals() -> Mapping[str, str]:
    """Plural -> singular for words the suffix rules get wrong (``plurals.txt``)."""
    table = {}
    for line in (DATA_DIR / "plurals.txt").read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2:
            table[fields[0]] = fields[1]
    return table


def word_lists_digest() -> str:
    """A short hash of the word lists, so caches notice when they change."""
    digest = hashlib.sha256()
    for name in ("stopwords.txt", "generic_words.txt", "plurals.txt"):
        digest.update((DATA_DIR / name).read_bytes())
    return digest.hexdigest()[:16]


def is_stopword(word: str) -> bool:
    """True for a stop word or an adverb ending in "ly"."""
    lower = word.lower()
    if lower in stopwords():
        return True
    return lower.endswith("ly") and len(lower) > 4 and lower not in _LY_NOUNS


_WORD_BEFORE = re.compile(r"([^\W\d_][\w'’\-]*)\s*$")
_WORD_AFTER = re.compile(r"\s*([^\W\d_][\w'’\-]*)")


def content_word_before(text: str, position: int) -> bool:
    """Whether a content word (not a stop word) directly precedes ``position``: a term there
    is then only part of a longer phrase ("competitive spectral radius")."""
    match = _WORD_BEFORE.search(text, max(0, position - 60), position)
    return match is not None and not is_stopword(match.group(1))


def content_word_after(text: str, position: int) -> bool:
    """Whether a content word directly follows ``position`` ("Schur function basis")."""
    match = _WORD_AFTER.match(text, position)
    return match is not None and not is_stopword(match.group(1))


def mask_latex(text: str) -> str:
    """``text`` with LaTeX math and commands replaced by ``|`` (same length)."""
    return _LATEX.sub(lambda match: "|" * (match.end() - match.start()), text)


def tokenize(text: str) -> list[Token]:
    """The words of ``text`` with offsets into it; see the module docstring."""
    masked = (
        mask_latex(text)
        if ("$" in text or "\\" in text or "{" in text or "_" in text or "^" in text)
        else text
    )
    tokens: list[Token] = []
    segment = 0
    for match in _WORD.finditer(masked):
        word, start = match.group(), match.start()
        core = word.lstrip(_LEADING)
        if len(core) < len(word):
            segment += 1
            start += len(word) - len(core)
        stripped = core.rstrip(_TRAILING)
        if len(stripped) >= 2 and _TOKEN.fullmatch(stripped) and not stripped.isupper():
            tokens.append(Token(stripped, start, start + len(stripped), segment))
        else:
            segment += 1  # digits, symbols, acronyms and single letters separate terms
        if len(stripped) < len(core):
            segment += 1
    return tokens


@functools.lru_cache(maxsize=1 << 17)
def singularize(word: str) -> str:
    """English singular of a lower-case word (or of the last part of a hyphenated one)."""
    head, sep, last = word.rpartition("-")
    irregular = irregular_plurals()
    if last in irregular:
        return head + sep + irregular[last]
    if len(last) <= 3 or last.endswith(("ss", "us", "is", "ics")):
        return word
    if last.endswith("ies") and len(last) > 4:
        singular = last[:-3] + "y"
    elif last.endswith("sses") or last.endswith("zzes") or last.endswith(("xes", "ches", "shes")):
        singular = last[:-2]
    elif last.endswith("aux") or last.endswith("s"):
        singular = last[:-1]
    else:
        return word
    return head + sep + singular


@functools.lru_cache(maxsize=1 << 17)
def fold(word: str) -> str:
    """Lower case, accents removed, possessive and joiners dropped: the key of one word."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _JOINERS.sub("", _POSSESSIVE.sub("", plain))


def term_key(words: Sequence[str]) -> str:
    """The variant key of a term given as its words (see the module docstring)."""
    if not words:
        return ""
    return "".join(fold(word) for word in words[:-1]) + fold(singularize(words[-1].lower()))


def surface_key(surface: str) -> str:
    """The variant key of a term given as a string."""
    return term_key([token.text for token in tokenize(surface)])


def slugify(name: str) -> str:
    """A stable, URL-safe id for a concept name."""
    decomposed = unicodedata.normalize("NFKD", name.lower())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-") or "concept"


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text`` (:func:`fieldtune.chunking.sentence_starts`)."""
    starts = sentence_starts(text)
    ends = starts[1:] + [len(text)]
    return list(zip(starts, ends, strict=True))


def span_index(spans: Sequence[tuple[int, int]], position: int) -> int:
    """Index of the span containing ``position`` (spans sorted and contiguous)."""
    return max(0, bisect.bisect_right([start for start, _ in spans], position) - 1)


def truncate_words(text: str, limit: int) -> str:
    """``text`` with whitespace collapsed, cut to ``limit`` words (an ellipsis marks a cut)."""
    words = text.split()
    return " ".join(words) if len(words) <= limit else " ".join(words[:limit]) + " …"


class TermMatcher:
    """Finds occurrences of known terms (by variant key) in tokenized text.

    Every run of up to ``max_tokens`` consecutive tokens within a segment is
    looked up by key, so overlapping and nested occurrences are all found
    ("random graph" inside "random graph model"). A hyphenated word is one
    token, so "symmetric function" is not found inside "quasi-symmetric
    function". Cost: ``max_tokens`` dictionary look-ups per token.
    """

    def __init__(self, keys: Mapping[str, int], max_tokens: int) -> None:
        self.keys = dict(keys)
        self.max_tokens = max(1, max_tokens)

    def find(self, tokens: Sequence[Token]) -> list[Mention]:
        mentions = []
        raw = [fold(token.text) for token in tokens]
        last = [fold(singularize(token.text.lower())) for token in tokens]
        for i in range(len(tokens)):
            prefix = ""
            for j in range(i, min(i + self.max_tokens, len(tokens))):
                if tokens[j].segment != tokens[i].segment:
                    break
                concept = self.keys.get(prefix + last[j])
                if concept is not None:
                    mentions.append(Mention(concept, tokens[i].start, tokens[j].end))
                prefix += raw[j]
        return mentions


def maximal(mentions: Sequence[Mention]) -> Iterator[Mention]:
    """Mentions not strictly inside another one, in text order."""
    ordered = sorted(mentions, key=lambda m: (m.start, -m.end, m.concept))
    reach = -1
    for mention in ordered:
        if mention.end > reach:
            reach = mention.end
            yield mention
