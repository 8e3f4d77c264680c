"""Tests for fieldtune.teachers: the hybrid teacher against a hand computation, the labels teacher, the records."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fieldtune.errors import InputError
from fieldtune.registry import UnknownNameError
from fieldtune.teachers import (
    TEACHERS,
    CandidatePool,
    HybridTeacher,
    LabelsTeacher,
    Teacher,
    TeacherOptions,
    chunk_positives,
    make_teacher,
    read_scored_queries,
    write_scored_queries,
)
from fieldtune.types import Chunk, LabelledQuery, Query, ScoredQuery

QUERY = Query("q1", "equation state")


def _unit(degrees: float) -> list[float]:
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


class FakeEncoder:
    """Exact, hand-chosen vectors: documents at fixed angles, each query at its own angle."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[tuple[str, int]] = []

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray:
        self.calls.append((kind, len(texts)))
        return np.asarray([self.vectors[text] for text in texts], dtype=np.float32).reshape(len(texts), 2)


#: chunk id -> (document id, text, angle of its vector in degrees)
CHUNKS = {
    "c0": ("a", "heat equation diffusion", 0.0),
    "c1": ("b", "heat kernel", 30.0),
    "c2": ("c", "graph colouring", 90.0),
    "c3": ("c", "protein folding chaperone", 60.0),
    "c4": ("e", "equation of state", 180.0),
}
QUERY_ANGLE = 20.0


@pytest.fixture(scope="module")
def pool() -> CandidatePool:
    encoder = FakeEncoder({QUERY.text: _unit(QUERY_ANGLE), "graph": _unit(90.0)})
    ids = list(CHUNKS)
    vectors = np.asarray([_unit(angle) for _, _, angle in CHUNKS.values()], dtype=np.float32)
    return CandidatePool.build(ids, [t for _, t, _ in CHUNKS.values()], [d for d, _, _ in CHUNKS.values()],
                               vectors, encoder)


def _cos(chunk_id: str) -> float:
    return math.cos(math.radians(QUERY_ANGLE - CHUNKS[chunk_id][2]))


def _min_max(scores: dict[str, float]) -> dict[str, float]:
    low, high = min(scores.values()), max(scores.values())
    return {c: (s - low) / (high - low) for c, s in scores.items()}


def test_hybrid_scores_match_a_hand_computation(pool: CandidatePool) -> None:
    # Dense top 3: c1, c0, c3. BM25 top 3: only c4 (both words) and c0 ("equation") score above 0.
    bm25_rows, bm25_scores = pool.bm25.search([QUERY.text], 3)
    assert [pool.ids[r] for r, s in zip(bm25_rows[0], bm25_scores[0], strict=True) if s > 0] == ["c4", "c0"]
    bm25 = dict(zip(pool.ids, pool.bm25.scores(QUERY.text).tolist(), strict=True))
    union = ("c0", "c1", "c3", "c4")
    # every candidate is scored by both systems: c3 and c1 have BM25 0, c4 its (negative) cosine
    dense_norm = _min_max({c: _cos(c) for c in union})
    bm25_norm = _min_max({c: bm25[c] for c in union})
    assert bm25["c1"] == bm25["c3"] == 0.0 and bm25["c4"] > bm25["c0"] > 0.0
    w = 0.6
    expected = {c: w * dense_norm[c] + (1 - w) * bm25_norm[c] for c in union}

    [scored] = HybridTeacher(dense_weight=w).score([QUERY], pool, k=3)

    assert scored.query_id == "q1" and scored.text == QUERY.text and scored.positive_ids == ()
    assert set(scored.candidate_ids) == set(union)
    assert scored.candidate_ids == tuple(sorted(union, key=lambda c: -expected[c]))  # best first
    assert scored.teacher_scores == pytest.approx([expected[c] for c in scored.candidate_ids], abs=1e-6)
    # c0 is second in both lists: with exact scores it beats c1, which BM25 scores 0
    assert scored.candidate_ids[0] == "c0"


def test_hybrid_default_weight_is_searchs_and_equal_scores_break_by_row(pool: CandidatePool) -> None:
    [scored] = make_teacher("hybrid").score([QUERY], pool, k=2)
    # union of dense top 2 (c1, c0) and BM25 top 2 (c4, c0); c1 has the best cosine and BM25 0, c4 the best
    # BM25 and the worst cosine: both 0.5, tied, broken by row
    assert scored.candidate_ids[1:] == ("c1", "c4")
    assert scored.teacher_scores[1:] == pytest.approx([0.5, 0.5])


def test_query_without_known_words_is_ranked_by_dense_alone(pool: CandidatePool) -> None:
    [scored] = HybridTeacher().score([Query("g", "graph")], pool, k=2)  # "graph" is indexed: c2 only
    assert scored.candidate_ids[0] == "c2" and scored.teacher_scores[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k must be at least 1"):
        HybridTeacher().score([QUERY], pool, k=0)


def test_labels_teacher_keeps_scores_and_adds_missing_positives(pool: CandidatePool) -> None:
    labelled = [LabelledQuery("q1", QUERY.text, positive_ids=("c",))]  # document c has chunks c2 and c3
    positives = chunk_positives(labelled, pool)
    assert positives == {"q1": ("c2", "c3")}
    inner = HybridTeacher(dense_weight=0.6)
    [plain] = inner.score([QUERY], pool, k=2)  # c0, c1, c4: neither c2 nor c3
    [scored] = make_teacher("hybrid", options=TeacherOptions(dense_weight=0.6), labels=positives).score(
        [QUERY], pool, k=2
    )
    assert scored.positive_ids == ("c2", "c3")
    assert scored.candidate_ids == ("c2", "c3", *plain.candidate_ids)
    assert scored.teacher_scores == (plain.teacher_scores[0],) * 2 + plain.teacher_scores
    [with_k3] = LabelsTeacher(inner, positives).score([QUERY], pool, k=3)  # c3 is a candidate now: only c2 added
    assert with_k3.candidate_ids[:2] == ("c2", "c0") and with_k3.candidate_ids.count("c3") == 1
    [unlabelled] = LabelsTeacher(inner, {}).score([QUERY], pool, k=2)
    assert unlabelled == plain
    assert isinstance(LabelsTeacher(inner, {}), Teacher) and LabelsTeacher(inner, {}).name == "hybrid+labels"


def test_registry_names_the_known_teachers() -> None:
    assert "hybrid" in TEACHERS
    with pytest.raises(UnknownNameError, match=r"unknown teacher 'hybird'; did you mean 'hybrid'"):
        make_teacher("hybird")
    with pytest.raises(ValueError, match="dense_weight"):
        TeacherOptions(dense_weight=1.5)


def test_pool_from_chunks_encodes_documents_with_their_titles() -> None:
    chunks = [Chunk("x#0", "x", 0, "alpha beta", 0, 10, 2, title="T"), Chunk("y#0", "y", 0, "gamma", 0, 5, 1)]
    encoder = FakeEncoder({"T alpha beta": _unit(0), "gamma": _unit(90)})
    built = CandidatePool.from_chunks(chunks, encoder)
    assert built.texts == ("T alpha beta", "gamma") and built.doc_ids == ("x", "y")
    assert encoder.calls == [("document", 2)]
    assert "x#0" in built and built.row("y#0") == 1 and built.chunks_of(["y", "missing"]) == ("y#0",)
    hits = built.dense_top(np.asarray([_unit(80)], dtype=np.float32), k=5)  # k above the pool size
    assert [built.ids[r] for r in hits[0].keys] == ["y#0", "x#0"]
    with pytest.raises(ValueError, match="one id, text, document id, vector"):
        CandidatePool.build(["a"], ["t", "u"], ["a"], np.zeros((1, 2)), encoder)


def test_scored_queries_round_trip_and_a_damaged_line_is_named(tmp_path: Path) -> None:
    items = [
        ScoredQuery("q1", "equation state", ("c1", "c0"), (0.6, 0.25)),
        ScoredQuery("q2", "heat", ("c2", "c1"), (1.0, 0.1), positive_ids=("c2",)),
    ]
    path = tmp_path / "scored.jsonl"
    assert write_scored_queries(path, items) == 2
    assert read_scored_queries(path) == items
    path.write_text(path.read_text() + '{"query_id": "q3", "text": "x", "candidate_ids": ["c1"], '
                    '"teacher_scores": []}\n')
    with pytest.raises(InputError, match=r"scored\.jsonl, line 3: 1 candidates but 0 scores"):
        read_scored_queries(path)
