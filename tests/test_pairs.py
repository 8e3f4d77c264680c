from __future__ import annotations

import hashlib
import json
from collections import Counter

import pytest

from fieldtune.pairs import (
    PAIR_GENERATORS,
    GeneratedPairs,
    GraphParts,
    PairConfig,
    PairGenerator,
    Split,
    assign_split,
    check_leakage,
    derived_eval_set,
    generate_pairs,
    selected_generators,
)
from fieldtune.registry import UnknownNameError
from fieldtune.types import Chunk, Concept, ConceptEdge, EdgeType, Pair, PairKind


def _chunk(doc: str, n: int, text: str, title: str = "") -> Chunk:
    return Chunk(f"{doc}#{n}", doc, n, text, 0, len(text), len(text.split()), title)


def _fixture(n_concepts: int = 40):
    chunks, concepts = [], []
    for i in range(n_concepts):
        name = f"widget{i} manifold"
        ids = []
        for d in range(3):
            doc = f"d{i}_{d}"
            text = (
                f"The {name} is studied here in depth. We compute invariants of the {name} in many cases. "
                f"Further remarks concern boundary behaviour and regularity of solutions for all parameters."
            )
            chunks.append(_chunk(doc, 0, text, title=f"On the {name} number {d}"))
            ids.append(f"{doc}#0")
        concepts.append(
            Concept(
                id=f"widget{i}-manifold",
                name=name,
                score=1.0 / (i + 1),
                aliases=(f"widget{i} manifolds",),
                description=f"The {name} is studied here in depth.",
                description_chunk=ids[0],
                doc_ids=tuple(c.split("#")[0] for c in ids),
                chunk_ids=tuple(ids),
                central_chunk_ids=tuple(ids),
            )
        )
    edges = [
        ConceptEdge(concepts[i].id, concepts[i + 1].id, EdgeType.GENERALIZES, 1.0) for i in range(0, n_concepts - 1, 2)
    ]
    return chunks, concepts, edges


def test_all_kinds_split_by_concept_and_capped() -> None:
    chunks, concepts, edges = _fixture()
    config = PairConfig(max_per_concept=2)
    pairs = generate_pairs(chunks, concepts, edges, config)
    kinds = Counter(p.kind for p in pairs.train)
    assert set(kinds) == set(PairKind)
    per_concept = Counter(p.group for p in pairs.train if p.kind is PairKind.CONCEPT_NAME)
    assert max(per_concept.values()) <= 2
    for split in (Split.DEV, Split.TEST):
        for pair in getattr(pairs, split.value):
            assert assign_split(pair.group, config) is split
    assert pairs.test, "some concepts are held out for the derived test set"
    # Title and sentence pairs always train; sentence positives are derived texts without the sentence.
    for pair in pairs.train:
        if pair.kind is PairKind.SENTENCE:
            assert pair.anchor not in pairs.derived_texts[pair.positive_id]


def test_description_never_paired_with_its_source_chunk() -> None:
    chunks, concepts, edges = _fixture()
    pairs = generate_pairs(chunks, concepts, edges)
    source = {c.id: c.description_chunk for c in concepts}
    for pair in pairs.train + pairs.dev + pairs.test:
        if pair.kind is PairKind.CONCEPT_DESCRIPTION:
            assert pair.positive_id != source[pair.group]


def test_split_is_leak_free_and_check_catches_a_planted_leak() -> None:
    chunks, concepts, edges = _fixture()
    pairs = generate_pairs(chunks, concepts, edges)
    by_id = {c.id: c for c in concepts}
    report = check_leakage(pairs.train, pairs.dev + pairs.test, by_id)
    assert report.clean, report.leaks
    assert pairs.dropped, "titles that name held-out concepts were dropped from training"
    held = pairs.test[0]
    planted = [
        *pairs.train,
        Pair(f"what is known about {by_id[held.group].aliases[0]}?", chunks[0].id, PairKind.SENTENCE, "x"),
    ]
    leaky = check_leakage(planted, pairs.dev + pairs.test, by_id)
    assert not leaky.clean and "mentions held-out concept" in leaky.leaks[0]
    same_anchor = check_leakage(
        [*pairs.train, Pair(held.anchor.upper(), chunks[1].id, PairKind.TITLE, "y")], pairs.test, by_id
    )
    assert not same_anchor.clean


def test_derived_eval_set_uses_test_concepts_only() -> None:
    chunks, concepts, edges = _fixture()
    pairs = generate_pairs(chunks, concepts, edges)
    data = derived_eval_set(chunks, concepts, pairs.test)
    test_groups = {p.group for p in pairs.test}
    assert {q[2:] for q in data.queries} == test_groups
    assert len(data.corpus) == len(chunks)
    for rels in data.qrels.values():
        assert all(doc in data.corpus for doc in rels)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="fraction"):
        PairConfig(test_fraction=0.6, dev_fraction=0.4).validate()


def _pairs_digest(pairs) -> str:
    digest = hashlib.sha256()
    for split in ("train", "dev", "test"):
        for pair in getattr(pairs, split):
            digest.update((split + json.dumps(pair.to_dict(), ensure_ascii=False) + "\n").encode())
    for derived_id, text in sorted(pairs.derived_texts.items()):
        digest.update((derived_id + "\t" + text + "\n").encode())
    return digest.hexdigest()


def test_pairs_are_exactly_those_of_v0_1() -> None:
    """Same pairs, same order, same splits as the if-chain before the generator registry (commit 3eabd17)."""
    chunks, concepts, edges = _fixture()
    pairs = generate_pairs(chunks, concepts, edges, PairConfig(max_per_concept=2))
    assert (len(pairs.train), len(pairs.dev), len(pairs.test)) == (416, 12, 20)
    assert _pairs_digest(pairs) == "e393d2ed234466fc659fedf4ab3745dcdc0aa3b98b80e645e268c02475332bed"


def test_generator_registry_covers_every_kind_and_rejects_duplicates() -> None:
    assert list(PAIR_GENERATORS) == ["concept", "edge", "title", "sentence"]
    assert all(isinstance(g, PairGenerator) for g in PAIR_GENERATORS.values())
    assert {kind for g in PAIR_GENERATORS.values() for kind in g.kinds} == set(PairKind)
    with pytest.raises(ValueError, match="already registered"):
        PAIR_GENERATORS.register("edge", PAIR_GENERATORS["edge"])
    with pytest.raises(UnknownNameError, match="did you mean 'title'") as error:
        PAIR_GENERATORS["titel"]
    assert "known: concept, edge, title, sentence" in str(error.value)


def test_only_generators_of_selected_kinds_run() -> None:
    chunks, concepts, edges = _fixture()
    config = PairConfig(kinds=(PairKind.CONCEPT_DESCRIPTION, PairKind.TITLE))
    assert [g.name for g in selected_generators(config)] == ["concept", "title"]
    pairs = generate_pairs(chunks, concepts, edges, config)
    assert {p.kind for p in pairs.train + pairs.dev + pairs.test} == {PairKind.CONCEPT_DESCRIPTION, PairKind.TITLE}
    assert not pairs.derived_texts


def test_a_generator_reads_any_graph_with_concepts_and_edges() -> None:
    chunks, concepts, edges = _fixture(4)
    generated = PAIR_GENERATORS["sentence"].generate(chunks, GraphParts(concepts, edges), PairConfig())
    assert isinstance(generated, GeneratedPairs)
    assert generated.pairs and {p.positive_id for p in generated.pairs} <= set(generated.derived_texts)
    edge_pairs = PAIR_GENERATORS["edge"].generate(chunks, GraphParts(concepts, []), PairConfig()).pairs
    assert edge_pairs == []


def test_teacher_scores_round_trip_and_are_absent_when_unset() -> None:
    plain = Pair("a", "c#0", PairKind.TITLE, "d")
    assert "score" not in plain.to_dict() and "negative_scores" not in plain.to_dict()
    assert json.dumps(plain.to_dict()) == (
        '{"anchor": "a", "positive_id": "c#0", "kind": "title", "group": "d", "weight": 1.0, "negative_ids": []}'
    )
    scored = Pair("a", "c#0", PairKind.TITLE, "d", negative_ids=("c#1", "c#2"), score=0.9, negative_scores=(0.2, 0.1))
    again = Pair.from_dict(json.loads(json.dumps(scored.to_dict())))
    assert again == scored and isinstance(again.negative_scores, tuple)
    assert Pair.from_dict(plain.to_dict()) == plain
