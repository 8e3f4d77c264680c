"""The gate's pooled dev set: judged documents plus the base's and BM25's top documents per query."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fieldtune.bm25 import BM25Index
from fieldtune.encoding import Encoder, document_text
from fieldtune.evaluate.beir import load_beir
from fieldtune.evaluate.pooled import pooled_dev_set
from tests.conftest import TINY_CORPUS, TINY_QUERIES, write_beir_dir


def test_a_small_dev_set_is_scored_whole(tmp_path: Path) -> None:
    dev = write_beir_dir(tmp_path / "dev")
    assert pooled_dev_set(dev, tmp_path / "pool", "minilm", "fp32") == dev
    assert not (tmp_path / "pool").exists()


def test_the_pool_holds_the_judged_and_the_top_documents_of_the_base_and_bm25(tmp_path: Path) -> None:
    qrels = [("q1", "d1", 2), ("q2", "d2", 1), ("q4", "d5", 1)]
    dev = write_beir_dir(tmp_path / "dev", corpus=TINY_CORPUS, queries=TINY_QUERIES, qrels=qrels)
    pooled = load_beir(pooled_dev_set(dev, tmp_path / "pool", "minilm", "fp32", depth=1, threshold=2))
    full = load_beir(dev)
    assert pooled.queries == full.queries and pooled.qrels == full.qrels
    ids = list(full.corpus)
    texts = [document_text(full.corpus[d].title, full.corpus[d].text) for d in ids]
    queries = [full.queries[q] for q in ("q1", "q2", "q4")]
    encoder = Encoder("minilm", precision="fp32", show_progress=False)
    dense_top = np.argmax(encoder.encode(queries, kind="query") @ encoder.encode(texts, kind="document").T, axis=1)
    lexical_top, _ = BM25Index(texts).search(queries, k=1)
    expected = {"d1", "d2", "d5"} | {ids[i] for i in dense_top.tolist()} | {ids[i] for i in lexical_top[:, 0].tolist()}
    assert set(pooled.corpus) == expected and len(expected) < len(full.corpus)
    assert list(pooled.corpus) == [d for d in ids if d in expected]  # the corpus order is kept
