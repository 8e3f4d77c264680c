"""Showing search results on a terminal or as JSON (used by ``fieldtune search``)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from fieldtune.search.index import SearchResult
from fieldtune.search.snippet import mark

BOLD, RESET = "\x1b[1m", "\x1b[0m"
DIM = "\x1b[2m"


def to_json(results: Sequence[SearchResult]) -> str:
    """The results as a JSON list (one object per result, in rank order)."""
    return json.dumps([result.to_dict() for result in results], ensure_ascii=False, indent=2)


def to_text(results: Sequence[SearchResult], *, color: bool, chunks: bool = False) -> str:
    """Ranked results for a terminal: matched words in bold (``color``) or in [brackets]."""
    if not results:
        return "no results"
    lines = []
    for result in results:
        ident = result.chunk_id if chunks else result.doc_id
        title = result.title or "(untitled)"
        if color:
            snippet = mark(result.snippet, result.highlights, BOLD, RESET)
            title, ident = f"{BOLD}{title}{RESET}", f"{DIM}{ident}{RESET}"
            head = f"{result.rank:>3}. {result.score:.4f}  {title}  {ident}"
        else:
            snippet = mark(result.snippet, result.highlights)
            head = f"{result.rank:>3}. {result.score:.4f}  {title}  ({ident})"
        lines += [head, f"     {snippet}"]
        if result.concepts:
            lines.append(f"     concepts: {', '.join(result.concepts)}")
        if result.chunk_concepts:  # from the concept graph behind the index
            lines.append(f"     graph concepts: {', '.join(c.name for c in result.chunk_concepts)}")
    return "\n".join(lines)
