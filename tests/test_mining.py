"""Hard-negative mining never picks a planted false negative."""

from __future__ import annotations

import numpy as np

from fieldtune.mining import FalseNegativeGuard, MiningConfig, mine_hard_negatives, mine_with_model
from fieldtune.types import Concept, Pair, PairKind


def _unit(v: list[float]) -> np.ndarray:
    a = np.array(v, dtype=np.float32)
    return a / np.linalg.norm(a)


def test_planted_false_negatives_are_never_chosen() -> None:
    concept = Concept(
        id="kostka", name="Kostka number", score=1.0, aliases=("Kostka numbers",), chunk_ids=("a#0", "a#1")
    )
    texts = {
        "a#0": "Kostka numbers count tableaux.",          # positive
        "a#1": "More on the same paper's topic.",          # same document as the positive
        "b#0": "We study Kostka numbers for skew shapes.",  # another doc, but contains the concept: false negative
        "c#0": "A second positive for the same anchor.",   # listed positive of the same anchor
        "d#0": "Hall polynomials and Hall algebras.",      # a true hard negative
        "e#0": "Heat equation on manifolds.",              # an easy negative
        "f#0": "Almost identical to the positive text.",   # too close to the positive score
    }
    ids = list(texts)
    # Scores designed so the false negatives are the *most* similar candidates.
    chunk_vectors = np.stack([
        _unit([1, 0, 0]), _unit([0.99, 0.1, 0]), _unit([0.98, 0.2, 0]), _unit([0.97, 0.25, 0]),
        _unit([0.6, 0.8, 0]), _unit([0, 0, 1]), _unit([1, 0.01, 0]),
    ])
    pairs = [
        Pair("Kostka number", "a#0", PairKind.CONCEPT_NAME, "kostka"),
        Pair("Kostka number", "c#0", PairKind.CONCEPT_NAME, "kostka"),
    ]
    anchor = np.stack([_unit([1, 0, 0])] * 2)
    positives = np.stack([chunk_vectors[0], chunk_vectors[3]])
    guard = FalseNegativeGuard(pairs, {"kostka": concept}, texts, margin=0.95)
    for seed in range(20):
        mined, stats = mine_hard_negatives(
            pairs, ids, anchor, chunk_vectors, positives, guard, MiningConfig(negatives_per_pair=2, seed=seed)
        )
        for pair in mined:
            assert set(pair.negative_ids) <= {"d#0", "e#0"}, pair.negative_ids
            assert "d#0" in pair.negative_ids  # the hardest legitimate negative is used
    assert set(stats.refused) >= {
        "same document as the positive",
        "contains the anchor's concept",
        "positive of the same anchor",
    }


def test_mining_with_the_real_model_is_seeded() -> None:
    concept = Concept(id="c", name="Young tableau", score=1.0, chunk_ids=("a#0",))
    texts = {
        "a#0": "A Young tableau is a filling of a Young diagram.",
        "b#0": "Young tableaux appear in representation theory.",
        "c#0": "Symmetric functions form a ring.",
        "d#0": "The Robinson-Schensted correspondence maps permutations to pairs of shapes.",
        "e#0": "Protein folding is assisted by chaperones.",
    }
    pairs = [Pair("Young tableau", "a#0", PairKind.CONCEPT_NAME, "c")]
    first, _ = mine_with_model(
        pairs, texts, {"c": concept}, model="minilm", config=MiningConfig(negatives_per_pair=1, seed=1)
    )
    second, _ = mine_with_model(
        pairs, texts, {"c": concept}, model="minilm", config=MiningConfig(negatives_per_pair=1, seed=1)
    )
    assert first == second
    assert first[0].negative_ids and first[0].negative_ids[0] not in {"a#0", "b#0"}  # b#0 mentions the concept


def test_a_chunk_refused_for_one_concept_stays_a_negative_for_another() -> None:
    """The guard remembers mention checks per concept: interleaved concepts must not share answers."""
    kostka = Concept(id="kostka", name="Kostka number", score=1.0)
    hall = Concept(id="hall", name="Hall algebra", score=1.0)
    texts = {
        "a#0": "Kostka numbers count tableaux.",
        "h#0": "Hall algebras of finite modules.",
        "x#0": "Kostka numbers meet Hall algebras.",  # mentions both
        "k#0": "Kostka numbers for skew shapes.",     # mentions Kostka only: a negative for Hall's pairs alone
        "e#0": "Heat equation on manifolds.",
    }
    ids = list(texts)
    chunk_vectors = np.stack([_unit([1, 0, 0]), _unit([0, 1, 0]), _unit([0.6, 0.6, 0.1]),
                              _unit([0.5, 0.5, 0.2]), _unit([0.1, 0.1, 1])])
    pairs = [  # interleaved, so a memory shared across concepts would answer for the wrong one
        Pair("Kostka number", "a#0", PairKind.CONCEPT_NAME, "kostka"),
        Pair("Hall algebra", "h#0", PairKind.CONCEPT_NAME, "hall"),
        Pair("Kostka numbers", "a#0", PairKind.CONCEPT_NAME, "kostka"),
        Pair("Hall algebras", "h#0", PairKind.CONCEPT_NAME, "hall"),
    ]
    anchors = np.stack([_unit([0.7, 0.7, 0])] * 4)  # k#0 and x#0 rank above every positive's own score
    positives = np.stack([chunk_vectors[0], chunk_vectors[1], chunk_vectors[0], chunk_vectors[1]])
    guard = FalseNegativeGuard(pairs, {"kostka": kostka, "hall": hall}, texts, margin=2.0)  # no score refusals
    mined, stats = mine_hard_negatives(pairs, ids, anchors, chunk_vectors, positives, guard,
                                       MiningConfig(negatives_per_pair=1, candidates=1))
    # Kostka's pairs skip x#0 and k#0 (both mention it) for the other concept's h#0; Hall's skip x#0 only
    assert [p.negative_ids for p in mined] == [("h#0",), ("k#0",), ("h#0",), ("k#0",)]
    assert stats.refused["contains the anchor's concept"] == 2 * 2 + 2 * 1  # Kostka: x, k; Hall: x
    for pair in mined:  # the one-pair rule agrees with what mining did
        reason = guard.refusal(pair, "k#0", 0.0, 1.0)
        assert (reason is None) == (pair.group == "hall")
