"""The stage registry: declared inputs are enforced, artifacts are parsed once, the order is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldtune.build import run_build, run_stage
from fieldtune.config import BuildConfig
from fieldtune.stages.artifacts import CHUNKS, DOCUMENTS, GRAPH, ArtifactCache, Artifacts, UndeclaredArtifactError
from fieldtune.stages.base import Stage, StageContext
from fieldtune.stages.registry import STAGES, stages_until
from fieldtune.workdir import WorkDir, write_jsonl

from .build_fixture import write_corpus


def test_stage_order_is_one_list() -> None:
    assert list(STAGES) == ["ingest", "chunk", "concepts", "pairs", "queries", "teacher", "adapt", "mine", "train",
                            "gate", "eval", "card"]
    assert [s.name for s in stages_until("pairs")] == ["ingest", "chunk", "concepts", "pairs"]
    with pytest.raises(KeyError, match="did you mean 'pairs'"):
        stages_until("pair")


def test_every_input_is_an_earlier_output() -> None:
    published: list[str] = []
    for stage in STAGES.values():
        for name in stage.inputs:
            assert any(name == out or name.startswith(out + "/") or out.startswith(name + "/") for out in published), (
                stage.name, name)
        published.extend(stage.outputs)


def _workdir_with_chunks(tmp_path: Path) -> WorkDir:
    workdir = WorkDir(tmp_path / "w")
    write_jsonl(workdir.path(DOCUMENTS), [{"id": "d1", "text": "alpha beta"}])
    write_jsonl(workdir.path(CHUNKS), [{"id": "d1#0", "doc_id": "d1", "index": 0, "text": "alpha beta", "start": 0,
                                         "end": 10, "n_tokens": 2, "title": ""}])
    return workdir


def test_accessor_refuses_an_undeclared_artifact(tmp_path: Path) -> None:
    artifacts = Artifacts(ArtifactCache(_workdir_with_chunks(tmp_path)), "mine", inputs=(CHUNKS,))
    assert [c.id for c in artifacts.chunks()] == ["d1#0"]
    assert artifacts.reads == {CHUNKS}
    with pytest.raises(UndeclaredArtifactError, match="graph.json"):
        artifacts.graph()
    with pytest.raises(UndeclaredArtifactError, match="documents.jsonl"):
        artifacts.path(DOCUMENTS)


def test_artifacts_are_parsed_once_per_build_and_dropped_when_rewritten(tmp_path: Path) -> None:
    cache = ArtifactCache(_workdir_with_chunks(tmp_path))
    first = Artifacts(cache, "a", (CHUNKS,)).chunks()
    assert Artifacts(cache, "b", (CHUNKS,)).chunks() is first
    cache.invalidate([CHUNKS])
    assert Artifacts(cache, "c", (CHUNKS,)).chunks() is not first


def _sneaky_stage(inputs: tuple[str, ...]) -> Stage:
    def run(ctx: StageContext) -> dict:
        # Bypasses the accessor: the read guard must still see it.
        (ctx.workdir.path(CHUNKS)).read_text()
        ctx.output("sneaky.json").write_text("{}")
        return {}

    return Stage(name="sneaky", inputs=inputs, outputs=("sneaky.json",), run=run, params=lambda c: {})


def test_a_stage_that_opens_an_undeclared_artifact_fails(tmp_path: Path) -> None:
    workdir = _workdir_with_chunks(tmp_path)
    with pytest.raises(UndeclaredArtifactError, match="chunks.jsonl"):
        run_stage(_sneaky_stage((DOCUMENTS,)), workdir, ArtifactCache(workdir), tmp_path, BuildConfig())
    assert "sneaky" not in workdir.manifest()["stages"]
    result = run_stage(_sneaky_stage((CHUNKS,)), workdir, ArtifactCache(workdir), tmp_path, BuildConfig())
    assert not result.skipped and result.record["outputs"]


def test_a_stage_cannot_write_an_undeclared_output(tmp_path: Path) -> None:
    workdir = _workdir_with_chunks(tmp_path)
    artifacts = Artifacts(ArtifactCache(workdir), "x", ())
    ctx = StageContext(BuildConfig(), tmp_path, workdir, artifacts, outputs=(GRAPH,))
    assert ctx.output(GRAPH) == workdir.path(GRAPH)
    with pytest.raises(UndeclaredArtifactError, match="chunks.jsonl"):
        ctx.output(CHUNKS)


def test_seed_is_set_once_for_every_stage() -> None:
    config = BuildConfig(seed=7)
    assert config.pairs.seed == config.mining.seed == config.train_config().seed == 7
    with pytest.raises(ValueError, match="seed"):
        BuildConfig(train_overrides={"seed": 3})


def test_pipeline_until_pairs_runs_under_the_read_guard(tmp_path: Path) -> None:
    """The real stages, guarded: any undeclared read would raise. A rerun skips every stage."""
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    first = run_build(corpus, tmp_path / "out", BuildConfig(), until="pairs")
    assert [s.name for s in first.stages] == ["ingest", "chunk", "concepts", "pairs"]
    again = run_build(corpus, tmp_path / "out", BuildConfig(), until="pairs")
    assert all(s.skipped for s in again.stages)
    changed = run_build(corpus, tmp_path / "out", BuildConfig(seed=1), until="pairs")
    assert [s.skipped for s in changed.stages] == [True, True, True, False]


def test_only_later_stages_outputs_are_left_out_of_a_stages_hashes() -> None:
    from fieldtune.build import _nested_outputs

    assert _nested_outputs(STAGES["teacher"]) == []  # queries/train.jsonl is what the teacher reads
    assert "model/README.md" in _nested_outputs(STAGES["gate"])  # the card writes into the gate's model/


def test_new_queries_rerun_the_teacher(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    queries = tmp_path / "queries.txt"
    queries.write_text("\n".join(f"heat equation question {i}" for i in range(10)) + "\n", encoding="utf-8")
    first = run_build(corpus, tmp_path / "out", BuildConfig(queries=str(queries)), until="teacher")
    assert [s.name for s in first.stages][-2:] == ["queries", "teacher"]
    queries.write_text("\n".join(f"graph colouring question {i}" for i in range(12)) + "\n", encoding="utf-8")
    again = run_build(corpus, tmp_path / "out", BuildConfig(queries=str(queries)), until="teacher")
    assert {s.name: s.skipped for s in again.stages}["teacher"] is False
    scored = (tmp_path / "out" / "teacher" / "train.jsonl").read_text(encoding="utf-8")
    assert "graph colouring" in scored and "heat equation question" not in scored
