"""fieldtune.bm25: the top k it computes from bm25s' scores is bm25s' own retrieval, with and without a mask."""

from __future__ import annotations

import numpy as np
import pytest

from fieldtune.bm25 import BM25Index

from .build_fixture import synthetic_corpus


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return [f"{d['title']} {d['text']}" for d in synthetic_corpus(120, 0)]


def _library_top(index: BM25Index, words: list[str], k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    found, scores = index._retriever.retrieve([words], k=k, show_progress=False, n_threads=0,
                                              weight_mask=None if mask is None else mask.astype(np.float32))
    return np.asarray(found[0]), np.asarray(scores[0])


@pytest.mark.parametrize("masked", [False, True])
def test_top_k_matches_bm25s_retrieve(corpus: list[str], masked: bool) -> None:
    index = BM25Index(corpus)
    rng = np.random.default_rng(0)
    mask = rng.random(len(corpus)) < 0.5 if masked else None
    queries = [" ".join(rng.choice(text.split(), size=3)) for text in rng.choice(corpus, size=25)]
    indices, scores = index.search(queries, 10, mask=mask)
    for query, rows, row_scores in zip(queries, indices, scores, strict=True):
        [words] = index._known_words([query])
        expected_rows, expected_scores = _library_top(index, words, 10, mask)
        np.testing.assert_allclose(row_scores, expected_scores, rtol=1e-6)
        positive = expected_scores > 0
        if positive.any():  # equal scores may come in another order: compare each row's own score
            np.testing.assert_allclose(index.scores(query)[rows[row_scores > 0]], row_scores[row_scores > 0],
                                       rtol=1e-6)
            assert (row_scores[:-1] >= row_scores[1:]).all()
        if mask is not None:
            assert mask[rows[row_scores > 0]].all()  # a masked-out row never scores


def test_unknown_words_and_k_beyond_the_corpus(corpus: list[str]) -> None:
    index = BM25Index(corpus)
    indices, scores = index.search(["zzzz qqqq", max(corpus[3].split(), key=len)], 10_000)
    assert indices.shape == (2, len(corpus)) and not scores[0].any() and scores[1].max() > 0
    assert (scores[1][:-1] >= scores[1][1:]).all()
