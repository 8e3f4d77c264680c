"""Snippets: the part of a passage around the query's words, with highlight spans.

A passage word matches when its Snowball stem (the stemmer BM25 uses) equals
the stem of a query word that is not a stop word, so "folding" in a query
highlights "folds" and "folded". The snippet is the window of at most
``width`` characters holding the most distinct matched words, cut at word
boundaries, with "…" where text was left out.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

WORD = re.compile(r"\w+", re.UNICODE)
ELLIPSIS = "…"
DEFAULT_WIDTH = 280


@functools.lru_cache(maxsize=1)
def _stem() -> Callable[[str], str]:
    try:
        import Stemmer
    except ImportError:
        return lambda word: word
    stemmer = Stemmer.Stemmer("english")
    return stemmer.stemWord


@functools.lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    try:
        from bm25s.stopwords import STOPWORDS_EN
    except ImportError:
        return frozenset()
    return frozenset(STOPWORDS_EN)


@functools.lru_cache(maxsize=1024)  # a search makes a snippet for each of its k results from one query
def query_stems(query: str) -> frozenset[str]:
    """Stems of the query's words, without stop words."""
    stem, stop = _stem(), _stopwords()
    return frozenset(
        stem(word) for word in (m.group().lower() for m in WORD.finditer(query)) if word not in stop
    )


@functools.lru_cache(maxsize=256)
def _candidates(stems: frozenset[str]) -> re.Pattern[str] | None:
    """Words (in lower-cased text) that begin like one of ``stems`` less its last two letters, or None.

    A word's Snowball stem less its last two letters begins the word (true of all 54k words of the
    six shared corpora), so a word this does not find cannot match and is never stemmed: stemming
    every word in Python was most of a snippet's time (~1 ms for a 200-word abstract).
    """
    starts = sorted({key[: max(1, len(key) - 2)] for key in stems}, key=len, reverse=True)
    if not starts:
        return None
    return re.compile(r"\b(?:" + "|".join(map(re.escape, starts)) + r")\w*", re.UNICODE)


def _matches(passage: str, stems: frozenset[str]) -> list[tuple[int, int, str]]:
    stem = _stem()
    lowered = passage.lower()
    pattern = _candidates(stems)
    if pattern is None:
        return []
    if len(lowered) != len(passage):  # a letter whose lower case is longer: offsets would shift
        words = ((m.start(), m.end(), m.group().lower()) for m in WORD.finditer(passage))
    else:
        words = ((m.start(), m.end(), m.group()) for m in pattern.finditer(lowered))
    return [(start, end, key) for start, end, word in words if (key := stem(word)) in stems]


def _best_start(matches: list[tuple[int, int, str]], width: int) -> int:
    """Start of the window (``width`` chars) covering the most distinct matched stems."""
    best, best_key = 0, (-1, -1)
    for i, (anchor, _, _) in enumerate(matches):
        inside = [m for m in matches[i:] if m[1] <= anchor + width]
        key = (len({m[2] for m in inside}), len(inside))
        if key > best_key:
            best, best_key = anchor, key
    return best


def make_snippet(
    passage: str, query: str, *, width: int = DEFAULT_WIDTH
) -> tuple[str, list[tuple[int, int]]]:
    """``(snippet, highlights)``: an excerpt of ``passage``, (start, end) spans of matched words."""
    text = " ".join(passage.split())  # one line, single spaces
    matches = _matches(text, query_stems(query))
    if len(text) <= width:
        start, end = 0, len(text)
    else:
        anchor = _best_start(matches, width) if matches else 0
        # Show a little context before the first matched word.
        start = max(0, min(anchor - width // 5, len(text) - width))
        if start > 0:
            space = text.find(" ", start)
            start = space + 1 if 0 <= space < anchor else start
        end = min(len(text), start + width)
        if end < len(text):
            space = text.rfind(" ", start, end)
            end = space if space > start else end
    prefix = ELLIPSIS if start > 0 else ""
    suffix = ELLIPSIS if end < len(text) else ""
    snippet = prefix + text[start:end] + suffix
    shift = len(prefix) - start
    highlights = [(s + shift, e + shift) for s, e, _ in matches if s >= start and e <= end]
    return snippet, highlights


def mark(
    snippet: str, highlights: list[tuple[int, int]], before: str = "[", after: str = "]"
) -> str:
    """The snippet with each highlighted span wrapped in ``before`` / ``after``."""
    parts, last = [], 0
    for start, end in sorted(highlights):
        parts += [snippet[last:start], before, snippet[start:end], after]
        last = end
    parts.append(snippet[last:])
    return "".join(parts)
