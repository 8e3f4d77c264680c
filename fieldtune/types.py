"""Record types shared by every stage.

Each stage reads and writes these; keeping them in one module means a field
is added in one place and every reader and writer sees it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
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


class EdgeType(str, Enum):
    """How two concepts are related in the graph."""

    COOCCURS = "cooccurs"          # appear in the same documents more than chance (NPMI)
    SIMILAR = "similar"            # close in the base model's embedding space
    GENERALIZES = "generalizes"    # source generalizes target ("X generalizes Y", "Y is a special case of X")
    EXTENDS = "extends"            # source extends target ("X extends Y")


@dataclass(frozen=True)
class Concept:
    """A field concept found in the corpus.

    ``id`` is a stable slug of the canonical ``name``; ``aliases`` are the merged
    surface variants (plural, case, hyphenation, near-duplicates). The
    description is a sentence taken from the corpus (``description_chunk`` says
    which chunk), preferably a defining one. ``chunk_ids`` lists every chunk the
    concept occurs in; ``central_chunk_ids`` the subset where it is central
    (frequent there, or in the document's title).
    """

    id: str
    name: str
    score: float
    aliases: tuple[str, ...] = ()
    description: str = ""
    description_chunk: str = ""
    doc_ids: tuple[str, ...] = ()
    chunk_ids: tuple[str, ...] = ()
    central_chunk_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Concept:
        tuples = ("aliases", "doc_ids", "chunk_ids", "central_chunk_ids")
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


@dataclass(frozen=True)
class ConceptEdge:
    """A typed, weighted relation between two concepts (by id)."""

    source: str
    target: str
    type: EdgeType
    weight: float
    evidence: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "type": self.type.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConceptEdge:
        return cls(**{**data, "type": EdgeType(data["type"])})


class PairKind(str, Enum):
    """Where a training pair came from."""

    CONCEPT_NAME = "concept_name"                # concept name -> a central chunk
    CONCEPT_DESCRIPTION = "concept_description"  # concept description -> a central chunk
                                                 # (not the one it was taken from)
    EDGE = "edge"                                # concept -> a central chunk of a neighbouring concept
    TITLE = "title"                              # document title -> one of its chunks
    SENTENCE = "sentence"                        # a sentence -> the rest of its chunk


@dataclass(frozen=True)
class Pair:
    """An (anchor, positive chunk) training pair.

    ``group`` is the unit the train/dev/test split keeps together: the concept
    id for concept and edge pairs, the document id for title/sentence pairs.
    ``negative_ids`` are mined hard
    negatives (chunk ids), filled by the mining stage.

    ``score`` is a teacher's relevance score for (anchor, positive) and
    ``negative_scores`` the same teacher's scores for ``negative_ids``, in
    their order; score-based losses (distillation) train on them. Both are
    ``None`` when no teacher scored the pair, and are then left out of
    :meth:`to_dict`, so pair files without scores keep their exact bytes.
    """

    anchor: str
    positive_id: str
    kind: PairKind
    group: str
    weight: float = 1.0
    negative_ids: tuple[str, ...] = ()
    score: float | None = None
    negative_scores: tuple[float, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {**asdict(self), "kind": self.kind.value}
        for key in ("score", "negative_scores"):
            if data[key] is None:
                del data[key]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pair:
        scores = data.get("negative_scores")
        return cls(**{
            **data,
            "kind": PairKind(data["kind"]),
            "negative_ids": tuple(data.get("negative_ids", ())),
            "negative_scores": None if scores is None else tuple(float(s) for s in scores),
        })


@dataclass(frozen=True)
class Query:
    """A query the user gave (a search log line, a question), without judgements.

    ``id`` is the user's id, or ``q<line>`` for formats that carry none, so a
    message about a query can point back at its line.
    """

    id: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Query:
        return cls(id=str(data["id"]), text=data["text"])


@dataclass(frozen=True)
class LabelledQuery:
    """A query with the documents the user judged relevant (``positive_ids``) and not (``negative_ids``).

    The ids are *document* ids as the user wrote them (checked against the
    corpus when read); training maps them to the documents' chunks.
    """

    id: str
    text: str
    positive_ids: tuple[str, ...]
    negative_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelledQuery:
        return cls(
            id=str(data["id"]),
            text=data["text"],
            positive_ids=tuple(data["positive_ids"]),
            negative_ids=tuple(data.get("negative_ids", ())),
        )


@dataclass(frozen=True)
class PseudoQuery:
    """A query made from the corpus itself (a title, a concept name, a sentence) for a build without user queries.

    ``source`` names the registered pseudo-query source that made it
    (:mod:`fieldtune.pseudo_queries`). ``exclude_doc_id`` is set when the
    query's text was cut out of a document (inverse cloze): that document
    would be found by string match alone, so the teacher drops its chunks
    from the query's candidates.
    """

    id: str
    text: str
    source: str
    exclude_doc_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PseudoQuery:
        exclude = data.get("exclude_doc_id")
        return cls(id=str(data["id"]), text=data["text"], source=str(data["source"]),
                   exclude_doc_id=None if exclude is None else str(exclude))


@dataclass(frozen=True)
class ScoredQuery:
    """A training query with its candidate documents and a teacher's score for each.

    Query-side adaptation (:mod:`fieldtune.training.query_side`) trains on
    these: the student's cosines against the candidates are pulled towards the
    teacher's scores (``teacher_scores[i]`` belongs to ``candidate_ids[i]``,
    higher is more relevant). ``positive_ids`` are judged relevant candidates
    when the user gave labels (empty for unlabelled queries); they are always
    among ``candidate_ids``.
    """

    query_id: str
    text: str
    candidate_ids: tuple[str, ...]
    teacher_scores: tuple[float, ...]
    positive_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoredQuery:
        return cls(
            query_id=str(data["query_id"]),
            text=data["text"],
            candidate_ids=tuple(str(c) for c in data["candidate_ids"]),
            teacher_scores=tuple(float(s) for s in data["teacher_scores"]),
            positive_ids=tuple(str(p) for p in data.get("positive_ids", ())),
        )
