from __future__ import annotations

from collections import Counter

import pytest

from fieldtune.pairs import PairConfig, Split, assign_split, check_leakage, derived_eval_set, generate_pairs
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
            text = (f"The {name} is studied here in depth. We compute invariants of the {name} in many cases. "
                    f"Further remarks concern boundary behaviour and regularity of solutions for all parameters.")
            chunks.append(_chunk(doc, 0, text, title=f"On the {name} number {d}"))
            ids.append(f"{doc}#0")
        concepts.append(Concept(id=f"widget{i}-manifold", name=name, score=1.0 / (i + 1), aliases=(f"widget{i} manifolds",),
                                description=f"The {name} is studied here in depth.", description_chunk=ids[0],
                                doc_ids=tuple(c.split("#")[0] for c in ids), chunk_ids=tuple(ids), central_chunk_ids=tuple(ids)))
    edges = [ConceptEdge(concepts[i].id, concepts[i + 1].id, EdgeType.GENERALIZES, 1.0) for i in range(0, n_concepts - 1, 2)]
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
    planted = [*pairs.train, Pair(f"what is known about {by_id[held.group].aliases[0]}?", chunks[0].id, PairKind.SENTENCE, "x")]
    leaky = check_leakage(planted, pairs.dev + pairs.test, by_id)
    assert not leaky.clean and "mentions held-out concept" in leaky.leaks[0]
    same_anchor = check_leakage([*pairs.train, Pair(held.anchor.upper(), chunks[1].id, PairKind.TITLE, "y")], pairs.test, by_id)
    assert not same_anchor.clean


def test_derived_eval_set_uses_test_concepts_only() -> None:
    chunks, concepts, edges = _fixture()
    pairs = generate_pairs(chunks, concepts, edges)
    data = derived_eval_set(chunks, concepts, pairs.test)
    test_groups = {p.group for p in pairs.test}
    assert {q[2:] for q in data.queries} == test_groups
    assert len(data.corpus) == len(chunks)
    for qid, rels in data.qrels.items():
        assert all(doc in data.corpus for doc in rels)


def test_bad_config() -> None:
    with pytest.raises(ValueError, match="fraction"):
        PairConfig(test_fraction=0.6, dev_fraction=0.4).validate()
