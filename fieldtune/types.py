"""Record types shared by every stage.

Each stage reads and writes these; keeping them in one module means a field
is added in one place and every reader and writer sees it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: query id -> document id -> graded relevance (0 = judged not relevant).
Qrels = dict[str, dict[str, int]]
#: query id -> document id -> score (higher is better).
Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Document:
    """One corpus record as the user gave it.

    ``source`` names the file (and line or row) the record came from, so that
    later errors can point at it.
    """

    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Document:
        return cls(
            id=str(data["id"]),
            text=data.get("text", ""),
            title=data.get("title", ""),
            metadata=dict(data.get("metadata") or {}),
            source=data.get("source", ""),
        )


@dataclass(frozen=True)
class Chunk:
    """A token-bounded span of one document's text.

    ``text == document.text[start:end]``; ``id`` is ``"<doc_id>#<n>"`` with
    ``n`` counting chunks in document order, so a rebuild with the same
    settings yields the same ids. The document's title travels with it.
    """

    id: str
    doc_id: str
    index: int
    text: str
    start: int
    end: int
    n_tokens: int
    title: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(**data)


@dataclass(frozen=True)
class EvalSet:
    """A retrieval evaluation set in memory (BEIR layout on disk)."""

    name: str
    corpus: dict[str, Document]
    queries: dict[str, str]
    qrels: Qrels

    @property
    def judged_query_ids(self) -> list[str]:
        """Queries with at least one relevant document, in a stable order."""
        return sorted(
            (qid for qid, rels in self.qrels.items() if qid in self.queries and any(r > 0 for r in rels.values())),
        )
