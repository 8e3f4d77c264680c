"""A build with the user's queries: teacher-scored candidates, a query-adapted model, the gate on held-out queries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fieldtune.build import run_build
from fieldtune.config import BuildConfig, BuildConfigError
from fieldtune.gate import TEACHER_METRIC
from fieldtune.model_record import GateRecord

from .build_fixture import CONCEPTS, write_corpus

pytestmark = pytest.mark.slow

TINY_ADAPT = {"max_steps": 3, "batch_size": 8, "eval_every_steps": 2}


def _queries(path: Path) -> Path:
    lines = [name for name, _ in CONCEPTS] + [description for _, description in CONCEPTS]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_query_side_build_keeps_document_vectors_and_gates_on_held_out_queries(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from fieldtune.models import load_model

    corpus = write_corpus(tmp_path / "corpus.jsonl")
    config = BuildConfig(queries=str(_queries(tmp_path / "queries.txt")), budget_minutes=5,
                         query_side_overrides=TINY_ADAPT, dev_fraction=0.3)
    result = run_build(corpus, tmp_path / "out", config)
    out = tmp_path / "out"
    names = [s.name for s in result.stages]
    assert names == ["ingest", "chunk", "concepts", "pairs", "queries", "teacher", "adapt", "gate", "eval", "card"]
    manifest = json.loads((out / "manifest.json").read_text())["stages"]
    assert manifest["queries"]["stats"]["train"] + manifest["queries"]["stats"]["dev"] == 2 * len(CONCEPTS)
    scored = [json.loads(line) for line in (out / "teacher" / "train.jsonl").read_text().splitlines()]
    assert scored and all(len(s["candidate_ids"]) == len(s["teacher_scores"]) > 0 for s in scored)
    gate = GateRecord.read(out / "model")
    assert gate is not None and set(gate.scores) == {"adapted", "adapted-averaged", "base"}
    # Unlabelled held-out queries: candidates are judged by how closely they follow the teacher.
    assert gate.required_significance is False and gate.metric == TEACHER_METRIC
    assert set(gate.gains or {}) == {"adapted", "adapted-averaged"}
    # The teacher judged those dev queries: a fusion weight chosen on them would be circular; search's default stays.
    assert gate.hybrid is None and gate.dense_weight is None
    # The adapted model loads without fieldtune; its documents are the base's, bit for bit.
    adapted = SentenceTransformer(str(out / "adapted" / "model"))
    base = load_model("minilm", device="cpu")
    texts = ["Kostka polynomials count tableaux.", "A Banach space is complete."]
    assert np.array_equal(adapted.encode_document(texts), base.encode_document(texts))
    assert not np.allclose(adapted.encode_query(texts), base.encode_query(texts))
    # Evaluation and indexing encode its documents with the base (one cache for both).
    from fieldtune.encoding import Encoder

    encoder = Encoder(str(out / "adapted" / "model"), show_progress=False)
    assert encoder.document_encoder().spec == "minilm"
    assert np.array_equal(encoder.encode(texts, kind="document"), Encoder("minilm").encode(texts, kind="document"))
    again = run_build(corpus, out, config)
    assert all(s.skipped for s in again.stages)


def test_query_stages_need_queries(tmp_path: Path) -> None:
    with pytest.raises(BuildConfigError, match="needs the user's queries"):
        BuildConfig(mode="query")
    with pytest.raises(BuildConfigError, match="give --queries"):
        run_build(write_corpus(tmp_path / "c.jsonl"), tmp_path / "out", BuildConfig(), until="adapt")
