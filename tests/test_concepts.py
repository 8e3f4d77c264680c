"""The concepts stage on a planted corpus: terms, variants, descriptions, edges, files, cache."""

from __future__ import annotations

import json

import networkx as nx
import pytest

from fieldtune.concepts import (
    ConceptConfig,
    ConceptExtractor,
    ExtractionCache,
    NoConceptsError,
    StatisticalExtractor,
    UnknownExtractorError,
    build_graph,
    get_extractor,
    read_graph,
    register_extractor,
    run_batches,
)
from fieldtune.concepts.edges import match_relation
from fieldtune.concepts.terms import near_identical
from fieldtune.concepts.text import content_word_before, singularize, surface_key, tokenize
from fieldtune.types import Chunk, EdgeType

FILLER = [
    "In this paper we show that the main result holds in general.",
    "We prove a new result and discuss the following case.",
    "Our approach is simple and the method is new.",
    "This study answers a question raised in previous work.",
    "The proof is short and we give several examples.",
]

# (doc id, title, sentences). Planted terms recur in 3-6 of the 30 documents.
DOCS = [
    (
        "a0",
        "Kostka polynomials and charge",
        [
            "Kostka polynomials count semistandard tableaux with the charge statistic.",
            "We compute Kostka polynomials for hook shapes using crystal bases.",
        ],
    ),
    (
        "a1",
        "Charge and cocharge",
        [
            "We study the charge statistic on words and its cocharge variant.",
            "A Kostka polynomial is a q-analogue of the Kostka number that counts"
            " semistandard tableaux by charge.",
            "The Kostka polynomials are positive.",
        ],
    ),
    (
        "a2",
        "Semistandard tableaux of hook shape",
        [
            "Every semistandard tableau of hook shape has a reading word.",
            "Kostka polynomials appear as transition coefficients between bases.",
        ],
    ),
    (
        "a3",
        "Transition matrices",
        [
            "Hall-Littlewood polynomials and Kostka polynomials are related by a"
            " transition matrix.",
            "The transition matrix is unitriangular.",
        ],
    ),
    (
        "a4",
        "Crystal bases and charge",
        [
            "The Kostka polynomial of a rectangle is computed with crystal bases.",
            "Hall Littlewood polynomials of rectangles factor nicely.",
        ],
    ),
    (
        "a5",
        "Hall-Littlewood polynomials at roots of unity",
        [
            "Hall-Littlewood polynomials at roots of unity factor into plethysms.",
            "The cyclic sieving phenomenon appears for Hall-Littlewood polynomials.",
        ],
    ),
    (
        "a6",
        "Specializations",
        [
            "The Hall-Littlewood polynomial generalizes the Schur function.",
            "At q equal to zero one recovers the Schur function.",
        ],
    ),
    (
        "a7",
        "A special case",
        [
            "The Schur function is a special case of the Hall-Littlewood polynomial.",
            "The cyclic sieving phenomenon is studied for the Schur function.",
        ],
    ),
    (
        "s0",
        "Symmetric functions and plethysm",
        [
            "Symmetric functions form a graded ring with the plethysm operation.",
            "The Schur function basis of symmetric functions is orthonormal.",
        ],
    ),
    (
        "s1",
        "Power sums",
        [
            "Power sum symmetric functions diagonalize the plethysm operation.",
            "The Schur function expands in power sums by characters.",
        ],
    ),
    (
        "s2",
        "Inner products",
        [
            "The Hall inner product on symmetric functions makes power sums orthogonal.",
            "The omega involution preserves the inner product.",
        ],
    ),
    ("s3", "Positivity", ["Positivity of symmetric functions is a central question of plethysm."]),
    (
        "s4",
        "Monomial expansions",
        ["Monomial symmetric functions have a simple combinatorial expansion."],
    ),
    (
        "q0",
        "Quasi-symmetric functions and descents",
        [
            "Quasi-symmetric functions are indexed by compositions and descent sets.",
            "The fundamental basis of quasi-symmetric functions uses descent sets.",
        ],
    ),
    (
        "q1",
        "The peak algebra",
        [
            "The peak algebra is a subalgebra of quasi-symmetric functions.",
            "Descent sets of permutations refine peak sets.",
        ],
    ),
    (
        "q2",
        "P-partitions",
        ["Generating functions of P-partitions are quasi-symmetric functions with descent sets."],
    ),
    (
        "q3",
        "Hopf algebras of compositions",
        [
            "The Hopf algebra of quasi-symmetric functions is dual to noncommutative"
            " symmetric functions.",
            "The peak algebra is a Hopf subalgebra.",
        ],
    ),
    (
        "q4",
        "Compositions",
        ["A quasi-symmetric function is determined by its values on compositions."],
    ),
    (
        "g0",
        "Graph colouring and chromatic polynomials",
        [
            "Graph colouring of planar graphs is governed by the chromatic polynomial.",
            "The chromatic polynomial counts proper colourings.",
        ],
    ),
    (
        "g1",
        "List colouring",
        [
            "Graph colouring with lists generalizes ordinary colouring of vertices.",
            "The chromatic polynomial of a cycle is explicit.",
        ],
    ),
    (
        "g2",
        "Coloring sparse graphs",
        [
            "Graph coloring of sparse graphs uses discharging arguments.",
            "The chromatic polynomial of a sparse graph has no real roots below one.",
        ],
    ),
    (
        "g3",
        "Coloring and flows",
        [
            "Graph coloring is dual to nowhere-zero flows on planar graphs.",
            "Discharging arguments give the bound for planar graphs.",
        ],
    ),
    (
        "r0",
        "Random graphs",
        [
            "The random graph has a giant component above the threshold.",
            "Branching processes approximate the exploration of the random graph.",
        ],
    ),
    (
        "r1",
        "Thresholds",
        [
            "Sharp thresholds hold for monotone properties of the random graph.",
            "Branching processes explain the giant component.",
        ],
    ),
    ("r2", "Giant components", ["The giant component of the random graph is unique."]),
    (
        "h0",
        "The heat equation",
        [
            "The heat equation on a bounded domain has smooth solutions.",
            "Energy estimates control the Sobolev norm of the heat equation.",
        ],
    ),
    (
        "h1",
        "Parabolic regularity",
        [
            "Solutions of the heat equation are analytic in space.",
            "Energy estimates are the main tool.",
        ],
    ),
    ("h2", "Sobolev norms", ["The Sobolev norm of the solution decays for the heat equation."]),
    ("m0", "Spectral gaps", ["Spectral gaps of Markov chains control mixing times."]),
    (
        "m1",
        "Mixing",
        [
            "Mixing times of Markov chains on groups are studied with characters"
            " $\\chi_\\lambda$ and $q^{n}$."
        ],
    ),
]
PLANTED = [
    "kostka polynomial",
    "hall-littlewood polynomial",
    "semistandard tableau",
    "schur function",
    "symmetric function",
    "quasi-symmetric function",
    "graph colouring",
]


def make_chunks(docs=DOCS) -> list[Chunk]:
    chunks = []
    for n, (doc_id, title, sentences) in enumerate(docs):
        text = " ".join([*sentences, FILLER[n % len(FILLER)]])
        chunks.append(Chunk(f"{doc_id}#0", doc_id, 0, text, 0, len(text), len(text.split()), title))
    return chunks


def concept_with(graph, surface: str):
    """The concept whose name or an alias has the variant key of ``surface``."""
    key = surface_key(surface)
    found = [c for c in graph.concepts if key in {surface_key(n) for n in (c.name, *c.aliases)}]
    assert len(found) <= 1, f"{surface!r} is in several concepts: {[c.name for c in found]}"
    return found[0] if found else None


@pytest.fixture(scope="module")
def graph():
    return build_graph(make_chunks(), progress=False)


def test_text_rules():
    assert [
        singularize(w)
        for w in ["tableaux", "matrices", "classes", "series", "polynomials", "theories", "boxes"]
    ] == ["tableau", "matrix", "class", "series", "polynomial", "theory", "box"]
    assert (
        surface_key("quasi-polynomial")
        == surface_key("quasi polynomial")
        == surface_key("Quasipolynomials")
    )
    assert surface_key("Hall-Littlewood polynomials") == surface_key("Hall Littlewood polynomial")
    assert surface_key("symmetric function") != surface_key("quasi-symmetric function")
    assert [
        t.text for t in tokenize(r"the $GL_n$ \emph{Kostka polynomials}, 3-uniform hypergraphs")
    ] == ["the", "Kostka", "polynomials", "hypergraphs"]
    text = "The competitive spectral radius extends the notion of joint spectral radius."
    assert content_word_before(text, text.index("spectral"))  # part of a longer phrase
    assert not content_word_before(text, text.index("joint"))
    assert near_identical(["graph", "colouring"], ["graph", "coloring"])
    assert not near_identical(["symmetric", "function"], ["quasi-symmetric", "function"])
    assert not near_identical(["Hall", "polynomial"], ["Hill", "polynomial"])
    assert near_identical(["inverse", "dynamic", "problem"], ["dynamic", "inverse", "problem"])


def test_planted_terms_found_with_variants_merged(graph):
    for term in PLANTED:
        assert concept_with(graph, term) is not None, (
            f"{term!r} not found in {[c.name for c in graph.concepts]}"
        )
    kostka = concept_with(graph, "Kostka polynomial")
    assert {surface_key(n) for n in (kostka.name, *kostka.aliases)} == {
        surface_key("Kostka polynomial")
    }
    assert kostka.name.startswith("Kostka") and {
        kostka.name.lower(),
        *map(str.lower, kostka.aliases),
    } >= {"kostka polynomial", "kostka polynomials"}
    hall = concept_with(graph, "Hall Littlewood polynomials")
    assert hall is concept_with(graph, "Hall-Littlewood polynomial")
    assert (
        hall.name.startswith("Hall") and "Hall Littlewood polynomials" in hall.aliases
    )  # case from the corpus
    tableau = concept_with(graph, "semistandard tableaux")
    assert tableau is concept_with(graph, "semistandard tableau")
    # "graph coloring" is merged into "graph colouring" (or the reverse) by name embedding.
    assert concept_with(graph, "graph coloring") is concept_with(graph, "graph colouring")


def test_generalisation_is_not_merged(graph):
    symmetric, quasi = (
        concept_with(graph, "symmetric function"),
        concept_with(graph, "quasi-symmetric function"),
    )
    assert symmetric is not None and quasi is not None and symmetric.id != quasi.id


def test_no_stop_phrases(graph):
    names = [n.lower() for c in graph.concepts for n in (c.name, *c.aliases)]
    for bad in (
        "paper",
        "show",
        "main result",
        "we ",
        "new result",
        "approach",
        "this study",
        "following case",
    ):
        assert not [n for n in names if bad in n], bad


def test_occurrences_and_central_chunks(graph):
    kostka = concept_with(graph, "Kostka polynomial")
    assert kostka.doc_ids == ("a0", "a1", "a2", "a3", "a4")
    assert set(kostka.central_chunk_ids) <= set(kostka.chunk_ids)
    assert "a0#0" in kostka.central_chunk_ids  # in the title


def test_defining_sentence_is_the_description(graph):
    kostka = concept_with(graph, "Kostka polynomial")
    assert kostka.description.startswith("A Kostka polynomial is a q-analogue")
    assert kostka.description_chunk == "a1#0"
    for concept in graph.concepts:
        assert concept.description and len(concept.description.split()) <= 41


def test_generalizes_edge_direction(graph):
    hall, schur = (
        concept_with(graph, "Hall-Littlewood polynomial"),
        concept_with(graph, "Schur function"),
    )
    edges = [e for e in graph.edges if e.type is EdgeType.GENERALIZES]
    assert [(e.source, e.target) for e in edges] == [(hall.id, schur.id)]
    assert edges[0].weight == 2.0 and "generalizes" in edges[0].evidence
    assert match_relation(" is an extension of the ") == (EdgeType.EXTENDS, True)
    assert match_relation(", a special case of ") == (EdgeType.GENERALIZES, False)
    assert match_relation(" and the ") is None


def test_edges_are_valid(graph):
    ids = {c.id for c in graph.concepts}
    by_type = {t: [e for e in graph.edges if e.type is t] for t in EdgeType}
    assert by_type[EdgeType.COOCCURS] and by_type[EdgeType.SIMILAR]
    kostka, tableau = (
        concept_with(graph, "Kostka polynomial"),
        concept_with(graph, "semistandard tableau"),
    )
    assert any({e.source, e.target} == {kostka.id, tableau.id} for e in by_type[EdgeType.COOCCURS])
    keys = [(e.source, e.target, e.type) for e in graph.edges]
    assert len(keys) == len(set(keys))
    for edge in graph.edges:
        assert edge.source in ids and edge.target in ids and edge.source != edge.target
    assert graph.stats["edges"] == {t.value: len(es) for t, es in by_type.items()}


def test_files_round_trip(graph, tmp_path):
    json_path, graphml_path = graph.write(tmp_path)
    assert read_graph(tmp_path) == graph
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert set(data) >= {"concepts", "edges", "stats", "config"}
    loaded = nx.read_graphml(graphml_path, force_multigraph=True)
    assert loaded.number_of_nodes() == len(graph.concepts)
    assert loaded.number_of_edges() == len(graph.edges)
    kostka = concept_with(graph, "Kostka polynomial")
    node = loaded.nodes[kostka.id]
    assert node["name"] == kostka.name and node["aliases"].split("|") == list(kostka.aliases)
    assert node["n_docs"] == len(kostka.doc_ids)
    assert {d["type"] for _, _, d in loaded.edges(data=True)} >= {
        "cooccurs",
        "similar",
        "generalizes",
    }
    assert not list(tmp_path.glob(".*.tmp"))


def test_deterministic(graph):
    assert build_graph(make_chunks(), progress=False).to_dict() == graph.to_dict()


def test_no_concepts_error():
    chunks = make_chunks(
        [("x", "Cats", ["Cats sleep a lot."]), ("y", "Rain", ["Rain falls in spring."])]
    )
    with pytest.raises(NoConceptsError, match=r"2 chunks of 2 documents.*min-df"):
        build_graph(chunks, progress=False)


def test_registry():
    with pytest.raises(
        UnknownExtractorError,
        match=r"did you mean 'statistical'.*registered extractors: .*statistical",
    ):
        get_extractor("statisticl")
    with pytest.raises(ValueError, match="already registered"):
        register_extractor("statistical", lambda config: StatisticalExtractor())
    extractor = get_extractor("statistical", ConceptConfig(max_words=3))
    assert isinstance(extractor, StatisticalExtractor) and extractor.max_words == 3
    assert isinstance(extractor, ConceptExtractor)


class CountingExtractor:
    """The statistical extractor behind a batch counter, failing on demand."""

    name = "counting"

    def __init__(self, fail_after: int | None = None) -> None:
        self.inner = StatisticalExtractor()
        self.calls = 0
        self.fail_after = fail_after

    def extract_batch(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt
        self.calls += 1
        return self.inner.extract_batch(texts)

    def extract(self, chunks, *, cache=None, progress=True):
        return run_batches(
            self.name,
            "v1",
            chunks,
            self.extract_batch,
            batch_size=4,
            cache=cache,
            progress=progress,
        )


def test_extraction_cache_resumes(tmp_path):
    chunks = make_chunks()
    path = tmp_path / "cache.jsonl"
    interrupted = CountingExtractor(fail_after=3)
    with pytest.raises(KeyboardInterrupt):
        interrupted.extract(chunks, cache=ExtractionCache(path))
    assert len(ExtractionCache(path)) == 12
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"key": "counting:v1:abc", "found": [["trunc')  # a write cut short
    resumed = CountingExtractor()
    first = resumed.extract(chunks, cache=ExtractionCache(path))
    assert resumed.calls == 5  # the 18 texts not cached, 4 per batch
    assert path.read_text(encoding="utf-8").endswith("\n")
    again = CountingExtractor()
    assert again.extract(chunks, cache=ExtractionCache(path)) == first
    assert again.calls == 0
    assert first == CountingExtractor().extract(chunks)
