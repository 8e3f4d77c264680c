"""How topical a term is: the cohesion of the documents it occurs in.

A field concept ("Lie algebra", "elliptic curve") occurs in documents about
the same thing; a generic phrase ("numerical experiments", "open problem")
occurs in documents about anything. Cohesion is the mean pairwise cosine of
the TF-IDF vectors of a term's documents, computed for all terms at once from
the norm of their documents' centroid:
``mean_{i != j} cos(d_i, d_j) = (|sum_i d_i|^2 - n) / (n (n - 1))``.

It is reported relative to the corpus baseline (the same mean over all
documents) and shrunk towards it by ``prior`` pseudo-documents, so a term in
two near-identical documents does not outrank one in twenty related ones.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from fieldtune.concepts.text import fold, is_stopword, singularize, tokenize
from fieldtune.types import Chunk

COHESION_PRIOR_DOCS = 10.0


def document_vectors(chunks: Sequence[Chunk]) -> tuple[object, dict[str, int]]:
    """Unit-norm TF-IDF rows, one per document (content words, singular); the row of each doc."""
    from scipy import sparse

    bags: dict[str, Counter[str]] = {}
    for chunk in chunks:
        bag = bags.get(chunk.doc_id)
        if bag is None:
            bag = bags[chunk.doc_id] = Counter()
            bag.update(_words(chunk.title))
        bag.update(_words(chunk.text))
    vocabulary: dict[str, int] = {}
    rows, cols, values = [], [], []
    for row, bag in enumerate(bags.values()):
        for word, count in bag.items():
            rows.append(row)
            cols.append(vocabulary.setdefault(word, len(vocabulary)))
            values.append(count)
    shape = (len(bags), max(len(vocabulary), 1))
    matrix = sparse.csr_matrix((np.asarray(values, dtype=np.float32), (rows, cols)), shape=shape)
    df = np.bincount(matrix.indices, minlength=shape[1]).astype(np.float32)
    matrix = matrix.multiply(np.log(len(bags) / np.maximum(df, 1.0))[None, :]).tocsr()
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    matrix = sparse.diags(1.0 / np.maximum(norms, 1e-12)) @ matrix
    return matrix.tocsr(), {doc_id: row for row, doc_id in enumerate(bags)}


def _words(text: str) -> list[str]:
    return (
        [fold(singularize(t.text.lower())) for t in tokenize(text) if not is_stopword(t.text)]
        if text
        else []
    )


def _mean_pairwise(sum_sq: np.ndarray, n: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 1, (sum_sq - n) / (n * (n - 1)), 0.0)


def relative_cohesion(
    doc_sets: Sequence[set[str]], chunks: Sequence[Chunk], prior: float = COHESION_PRIOR_DOCS
) -> np.ndarray:
    """For each set of document ids: shrunk mean pairwise cosine / corpus mean (1.0 = average)."""
    from scipy import sparse

    vectors, row_of = document_vectors(chunks)
    n_docs = vectors.shape[0]
    if n_docs < 2 or not doc_sets:
        return np.ones(len(doc_sets))
    total = np.asarray(vectors.sum(axis=0)).ravel()
    baseline = float(_mean_pairwise(np.array([total @ total]), np.array([float(n_docs)]))[0])
    if baseline <= 0:
        return np.ones(len(doc_sets))
    rows = [i for i, docs in enumerate(doc_sets) for _ in docs]
    cols = [row_of[d] for docs in doc_sets for d in sorted(docs)]
    incidence = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(doc_sets), n_docs)
    )
    centroids = incidence @ vectors
    sum_sq = np.asarray(centroids.multiply(centroids).sum(axis=1)).ravel().astype(np.float64)
    n = np.asarray([len(docs) for docs in doc_sets], dtype=np.float64)
    cohesion = _mean_pairwise(sum_sq, n)
    shrunk = (cohesion * np.maximum(n - 1, 0) + baseline * prior) / (np.maximum(n - 1, 0) + prior)
    return shrunk / baseline
