"""Pseudo-queries from the corpus: each source, the seeded cap, the registry, the inverse-cloze exclusion, a build."""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import numpy as np
import pytest

from fieldtune.concepts import ConceptGraph
from fieldtune.config import BuildConfig, BuildConfigError
from fieldtune.pairs import GraphParts
from fieldtune.pseudo_queries import PSEUDO_QUERY_SOURCES, PseudoQueryConfig, drop_source_documents, pseudo_queries
from fieldtune.registry import UnknownNameError
from fieldtune.stages.artifacts import CHUNKS as CHUNKS_FILE
from fieldtune.stages.artifacts import DOCUMENTS, USER_QUERIES, ArtifactCache, Artifacts
from fieldtune.stages.base import StageContext
from fieldtune.stages.queries import STAGE as QUERIES_STAGE
from fieldtune.teachers import CandidatePool, HybridTeacher
from fieldtune.training_mode import TrainingMode
from fieldtune.types import Chunk, Concept, PseudoQuery, Query, ScoredQuery
from fieldtune.workdir import WorkDir, write_jsonl

from .build_fixture import CONCEPTS, synthetic_corpus, write_corpus
from .conftest import run_cli


def _chunks(n_docs: int = 40) -> list[Chunk]:
    """Two chunks per fixture document (its first three sentences, then the rest), titled like the document."""
    chunks = []
    for doc in synthetic_corpus(n_docs):
        sentences = doc["text"].split(". ")
        halves = (". ".join(sentences[:3]) + ".", ". ".join(sentences[3:]))
        for index, text in enumerate(halves):
            chunks.append(Chunk(id=f"{doc['_id']}#{index}", doc_id=doc["_id"], index=index, text=text, start=0,
                                end=len(text), n_tokens=len(text.split()), title=doc["title"]))
    return chunks


def _graph(chunks: list[Chunk]) -> GraphParts:
    """One concept per planted term, occurring in the chunks that name it (scores fall with the list order)."""
    concepts = []
    for rank, (name, description) in enumerate(CONCEPTS):
        where = [c for c in chunks if name in c.text]
        concepts.append(Concept(id=f"c{rank}", name=name, score=1.0 - rank / 100, description=description,
                                doc_ids=tuple(dict.fromkeys(c.doc_id for c in where)),
                                chunk_ids=tuple(c.id for c in where)))
    return GraphParts(concepts=concepts, edges=[])


CHUNKS = _chunks()
GRAPH = _graph(CHUNKS)


def _generate(source: str, **options: object) -> list[PseudoQuery]:
    config = PseudoQueryConfig(sources=(source,), **options)  # type: ignore[arg-type]
    return [c.query for c in PSEUDO_QUERY_SOURCES[source].generate(CHUNKS, GRAPH, config)]


def test_titles_give_one_query_per_titled_document_and_skip_short_titles() -> None:
    queries = _generate("titles")
    assert len(queries) == len({c.doc_id for c in CHUNKS})
    first = queries[0]
    assert first == PseudoQuery("titles:doc000", CHUNKS[0].title, "titles", None)
    short = [Chunk(id="x#0", doc_id="x", index=0, text="Some text here.", start=0, end=15, n_tokens=3,
                   title="Introduction  two")]
    source = PSEUDO_QUERY_SOURCES["titles"]
    assert source.generate(short, GRAPH, PseudoQueryConfig()) == []


def test_concepts_give_the_name_and_the_description() -> None:
    queries = _generate("concepts")
    assert len(queries) == 2 * len(CONCEPTS)
    assert [q.text for q in queries[:2]] == list(CONCEPTS[0])
    assert {q.id for q in queries[:2]} == {"concepts:c0", "concepts:c0~description"}
    assert all(q.exclude_doc_id is None and q.source == "concepts" for q in queries)


def test_sentences_are_one_seeded_sentence_per_chunk_of_bounded_length_excluding_their_document() -> None:
    queries = _generate("sentences")
    by_chunk = {c.id: c for c in CHUNKS}
    assert len(queries) == len(CHUNKS)
    for query in queries:
        chunk = by_chunk[query.id.removeprefix("sentences:").rsplit("|", 1)[0]]
        assert query.text in " ".join(chunk.text.split())
        assert 6 <= len(query.text.split()) <= 40
        assert query.exclude_doc_id == chunk.doc_id
    assert _generate("sentences") == queries
    other_seed = _generate("sentences", seed=1)
    assert {q.id for q in other_seed} != {q.id for q in queries}
    assert all(7 <= len(q.text.split()) <= 9 for q in _generate("sentences", min_sentence_words=7,
                                                                max_sentence_words=9))


def test_keyphrases_join_the_best_concepts_of_a_chunk() -> None:
    queries = _generate("keyphrases")
    assert queries
    names = {name for name, _ in CONCEPTS}
    rank = {name: i for i, (name, _) in enumerate(CONCEPTS)}
    for query in queries:
        chunk = next(c for c in CHUNKS if query.id == f"keyphrases:{c.id}")
        present = sorted((n for n in names if n in chunk.text), key=rank.__getitem__)
        assert len(present) >= 2 and query.text == " ".join(present[:3])


def test_selection_is_deterministic_for_a_seed_whatever_the_record_order() -> None:
    config = PseudoQueryConfig(sources=("titles", "sentences", "keyphrases"), cap=50, seed=3)
    chosen = pseudo_queries(CHUNKS, GRAPH, config)
    shuffled = CHUNKS.copy()
    random.Random(0).shuffle(shuffled)
    assert pseudo_queries(shuffled, GRAPH, config) == chosen
    assert pseudo_queries(CHUNKS, GRAPH, PseudoQueryConfig(sources=config.sources, cap=50, seed=4)) != chosen


def test_caps_in_total_and_per_source_spread_over_documents() -> None:
    total = pseudo_queries(CHUNKS, GRAPH, PseudoQueryConfig(sources=("sentences",), cap=20))
    assert len(total) == 20
    # two chunks per document: a cap of half the chunks takes one sentence from each of 20 documents
    assert len({q.exclude_doc_id for q in total}) == 20
    mixed = pseudo_queries(CHUNKS, GRAPH, PseudoQueryConfig(sources=("titles", "concepts"), cap=30))
    assert len(mixed) == 30
    assert sum(q.source == "titles" for q in mixed) == sum(q.source == "concepts" for q in mixed) == 15
    capped = pseudo_queries(CHUNKS, GRAPH, PseudoQueryConfig(sources=("titles", "concepts"), cap=30,
                                                             per_source_cap=5))
    assert [q.source for q in capped].count("titles") == 5 and len(capped) == 10
    offline = tuple(name for name in PSEUDO_QUERY_SOURCES if name != "llm")  # llm needs a server: tests/test_llm*.py
    texts = [" ".join(q.text.casefold().split()) for q in pseudo_queries(
        CHUNKS, GRAPH, PseudoQueryConfig(sources=offline))]
    assert len(texts) == len(set(texts))


def test_unknown_source_names_the_known_ones_and_a_close_match() -> None:
    with pytest.raises(UnknownNameError, match=r"did you mean 'titles'\?.*known: titles, concepts, sentences"):
        PSEUDO_QUERY_SOURCES["title"]
    with pytest.raises(BuildConfigError, match="unknown pseudo-query source 'sentence'; did you mean 'sentences'"):
        BuildConfig(pseudo_queries=("sentence",))
    with pytest.raises(BuildConfigError, match="pseudo_query_cap"):
        BuildConfig(pseudo_queries=("titles",), pseudo_query_cap=0)


def test_pseudo_queries_make_a_query_side_build_but_are_not_supervision() -> None:
    config = BuildConfig(pseudo_queries=["titles", "concepts"])  # type: ignore[arg-type]
    assert config.pseudo_queries == ("titles", "concepts")
    assert config.training_mode() is TrainingMode.QUERY and config.adapts_query_side()
    assert not config.has_supervision()  # so the gate demands a significant dev gain
    assert BuildConfig().training_mode() is TrainingMode.FULL
    params = QUERIES_STAGE.params(config)
    assert params["pseudo_queries"] == ["titles", "concepts"] and params["pseudo_query_cap"] == 3000
    assert QUERIES_STAGE.params(config) != QUERIES_STAGE.params(BuildConfig(pseudo_queries=("titles",)))


def test_pseudo_queries_round_trip_through_the_queries_artifact(tmp_path: Path) -> None:
    workdir = WorkDir(tmp_path / "w")
    records = [PseudoQuery("sentences:d#0|1", "a sentence", "sentences", "d"), Query("q1", "a user query")]
    write_jsonl(workdir.path(f"{USER_QUERIES}/train.jsonl"), (r.to_dict() for r in records))
    assert Artifacts(ArtifactCache(workdir), "teacher", (USER_QUERIES,)).user_queries("train") == records


def _run_queries_stage(tmp_path: Path, config: BuildConfig) -> dict[str, list[dict]]:
    workdir = WorkDir(tmp_path / "w")
    write_jsonl(workdir.path(DOCUMENTS), [{"id": c.doc_id, "text": c.text} for c in CHUNKS])
    write_jsonl(workdir.path(CHUNKS_FILE), (c.to_dict() for c in CHUNKS))
    ConceptGraph(concepts=list(GRAPH.concepts), edges=[]).write(workdir.path("."))
    stage = QUERIES_STAGE
    ctx = StageContext(config=config, corpus=tmp_path, workdir=workdir, outputs=stage.outputs,
                       artifacts=Artifacts(ArtifactCache(workdir), stage.name, stage.inputs))
    stage.run(ctx)
    return {split: [json.loads(line) for line in workdir.path(f"{USER_QUERIES}/{split}.jsonl").read_text().splitlines()]
            for split in ("train", "dev")}


def test_the_queries_stage_splits_pseudo_queries_alone_and_keeps_them_out_of_the_users_dev(tmp_path: Path) -> None:
    alone = _run_queries_stage(tmp_path / "a", BuildConfig(pseudo_queries=("titles", "concepts")))
    expected = pseudo_queries(CHUNKS, GRAPH, BuildConfig(pseudo_queries=("titles", "concepts")).pseudo_query_config())
    assert alone["dev"] and sorted(r["id"] for r in alone["train"] + alone["dev"]) == sorted(q.id for q in expected)
    users = tmp_path / "queries.txt"
    users.write_text("".join(f"what is a {name}\n" for name, _ in CONCEPTS), encoding="utf-8")
    mixed = _run_queries_stage(tmp_path / "b", BuildConfig(queries=str(users), pseudo_queries=("titles",)))
    assert mixed["dev"] and all("source" not in r for r in mixed["dev"])
    assert {r["source"] for r in mixed["train"] if "source" in r} == {"titles"}


def test_build_takes_pseudo_query_sources_and_names_a_wrong_one(tmp_path: Path, capsys, monkeypatch) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    code, out, err = run_cli(["build", str(corpus), "--out", str(tmp_path / "o"), "--pseudo-queries", "titles,concept"],
                             capsys, monkeypatch)
    assert code == 2 and "did you mean 'concepts'" in out + err
    assert not (tmp_path / "o").exists()


class HashingEncoder:
    """Bag of hashed words: similar texts get similar vectors, deterministically, without a model."""

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray:
        vectors = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                vectors[row, zlib.crc32(word.encode()) % 64] += 1.0
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-9)


def test_the_teacher_loses_the_source_document_of_an_inverse_cloze_query() -> None:
    pool = CandidatePool.from_chunks(CHUNKS, HashingEncoder())
    queries = pseudo_queries(CHUNKS, GRAPH, PseudoQueryConfig(sources=("sentences", "titles"), cap=20))
    scored = HybridTeacher().score(queries, pool, k=10)
    doc_of = {c.id: c.doc_id for c in CHUNKS}
    kept = drop_source_documents(scored, queries, doc_of)
    by_id = {q.id: q for q in queries}
    cloze = [s for s in scored if by_id[s.query_id].exclude_doc_id]
    assert cloze and any(doc_of[s.candidate_ids[0]] == by_id[s.query_id].exclude_doc_id for s in cloze)
    for before, after in zip(scored, kept, strict=True):
        excluded = by_id[before.query_id].exclude_doc_id
        if excluded is None:
            assert after == before  # titles keep their own document: it is the answer
            continue
        assert excluded not in {doc_of[c] for c in after.candidate_ids}
        assert len(after.candidate_ids) == len(after.teacher_scores) > 0
        assert dict(zip(after.candidate_ids, after.teacher_scores, strict=True)).items() <= \
            dict(zip(before.candidate_ids, before.teacher_scores, strict=True)).items()
    only_own = ScoredQuery("sentences:doc000#0|0", "x", ("doc000#0", "doc000#1"), (1.0, 0.5))
    own_query = PseudoQuery("sentences:doc000#0|0", "x", "sentences", "doc000")
    assert drop_source_documents([only_own], [own_query], doc_of) == []


@pytest.mark.slow
def test_a_corpus_only_build_with_title_pseudo_queries(tmp_path: Path) -> None:
    from fieldtune.build import run_build
    from fieldtune.model_record import GateRecord

    corpus = write_corpus(tmp_path / "corpus.jsonl")
    config = BuildConfig(pseudo_queries=("titles",), budget_minutes=5,
                         query_side_overrides={"max_steps": 2, "batch_size": 8})
    result = run_build(corpus, tmp_path / "out", config)
    out = tmp_path / "out"
    assert [s.name for s in result.stages] == ["ingest", "chunk", "concepts", "pairs", "queries", "teacher", "adapt",
                                               "gate", "eval", "card"]
    manifest = json.loads((out / "manifest.json").read_text())["stages"]
    stats = manifest["queries"]["stats"]
    titles = {doc["title"] for doc in synthetic_corpus(80)}  # a repeated title is one query
    assert stats["pseudo"] == stats["train"] + stats["dev"] == len(titles)
    train = [json.loads(line) for line in (out / "queries" / "train.jsonl").read_text().splitlines()]
    assert train and all(r["source"] == "titles" and r["id"].startswith("titles:") for r in train)
    gate = GateRecord.read(out / "model")
    assert gate is not None and gate.required_significance is True
