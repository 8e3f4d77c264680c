"""Parameters of the concept stage and its error type."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fieldtune.errors import FieldtuneError
from fieldtune.llm.client import LLMEndpoint

#: the document-frequency floor of an extractor without one of its own (:meth:`ConceptConfig.doc_floor`)
DEFAULT_MIN_DF = 2
#: extractors whose floor differs from :data:`DEFAULT_MIN_DF`
EXTRACTOR_MIN_DF: dict[str, int] = {"llm": 1}


class NoConceptsError(FieldtuneError):
    """The corpus yielded no concept: too small, too heterogeneous, or filtered too hard."""

    def __init__(self, n_chunks: int, n_docs: int, n_candidates: int, min_df: int) -> None:
        self.n_chunks = n_chunks
        self.n_docs = n_docs
        super().__init__(
            f"no concepts found in {n_chunks} chunks of {n_docs} documents "
            f"({n_candidates} candidate terms, none in at least {min_df} documents "
            "and few enough to be specific). "
            "A concept must recur across documents: try a larger corpus of one field, "
            "or lower --min-df (e.g. --min-df 1 for a handful of long documents)."
        )


@dataclass(frozen=True)
class ConceptConfig:
    """How concepts are found, merged and linked.

    ``max_concepts=None`` scales with the corpus: ``min(1000, 40 + n_docs // 5)``.
    ``max_df`` is a fraction of the documents (terms in more are too generic);
    ``min_df`` a number of documents, ``None`` for the extractor's own floor
    (:meth:`doc_floor`). Thresholds are cosine similarities of
    concept names (merging, ``similar`` edges) or document-level NPMI
    (``cooccurs`` edges).
    """

    max_concepts: int | None = None
    min_df: int | None = None
    max_df: float = 0.2
    max_words: int = 4
    single_words: bool = True
    merge_threshold: float = 0.9
    similar_threshold: float = 0.6
    similar_top_k: int = 5
    cooccur_threshold: float = 0.2
    cooccur_top_k: int = 10
    cooccur_min_docs: int = 2
    max_central_fallback: int = 3
    description_words: int = 40
    batch_size: int = 256
    #: the registered extractor (``statistical``; ``llm`` reads concepts with the model at ``llm``)
    extractor: str = "statistical"
    llm: LLMEndpoint | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad parameter."""
        checks = [
            (
                self.max_concepts is None or self.max_concepts >= 1,
                "max_concepts must be at least 1 (or None to scale with the corpus)",
            ),
            (self.min_df is None or self.min_df >= 1, "min_df must be at least 1 document"),
            (0.0 < self.max_df <= 1.0, "max_df must be a fraction of documents in (0, 1]"),
            (2 <= self.max_words <= 8, "max_words must be between 2 and 8"),
            (0.0 < self.merge_threshold <= 1.0, "merge_threshold must be a cosine in (0, 1]"),
            (0.0 < self.similar_threshold <= 1.0, "similar_threshold must be a cosine in (0, 1]"),
            (-1.0 <= self.cooccur_threshold <= 1.0, "cooccur_threshold must be an NPMI in [-1, 1]"),
            (self.cooccur_min_docs >= 1, "cooccur_min_docs must be at least 1"),
            (
                min(self.similar_top_k, self.cooccur_top_k, self.max_central_fallback) >= 0,
                "top-k values must be >= 0",
            ),
            (self.description_words >= 5, "description_words must be at least 5"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (
                self.extractor != "llm" or self.llm is not None,
                "the llm concept extractor needs an endpoint: give --llm-url URL and --llm-model NAME",
            ),
        ]
        if self.llm is not None:
            self.llm.validate()
        for ok, message in checks:
            if not ok:
                raise ValueError(f"{message} (ConceptConfig: {self})")

    def concept_budget(self, n_docs: int) -> int:
        """How many concepts to keep for a corpus of ``n_docs`` documents."""
        return self.max_concepts if self.max_concepts is not None else min(1000, 40 + n_docs // 5)

    def doc_floor(self, extractor: str | None = None) -> int:
        """``min_df``, or where it is not set the floor of ``extractor`` (default: ``self.extractor``).

        The statistical extractor proposes every noun phrase of every chunk, so
        a term must recur in two documents to be told from noise. The llm
        extractor's reading is itself that filter, and a small model seldom
        names one concept alike in two documents: its floor is one document.
        """
        if self.min_df is not None:
            return self.min_df
        return EXTRACTOR_MIN_DF.get(extractor or self.extractor, DEFAULT_MIN_DF)

    def max_df_docs(self, n_docs: int) -> int:
        """``max_df`` as a number of documents (never below the document-frequency floor)."""
        return max(self.doc_floor(), int(self.max_df * n_docs))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
