"""The quality benchmark's protocols: 2-fold splits never score a query whose text the build saw; targets read right."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fieldtune.build import BuildConfig
from fieldtune.evaluate.beir import load_beir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _quality_protocols import plan_folds, pooled_summary, targets  # noqa: E402


def tiny_beir(root: Path, *, train: bool = False) -> Path:
    """Ten documents, ten test queries (query i judges document i), and optionally train judgements."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"document {i}"}) + "\n"
                                               for i in range(10)))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"query\nnumber {i}"}) + "\n"
                                                for i in range(10)))
    header = "query-id\tcorpus-id\tscore\n"
    (root / "qrels" / "test.tsv").write_text(header + "".join(f"q{i}\td{i}\t1\n" for i in range(10)))
    if train:
        (root / "qrels" / "train.tsv").write_text(header + "q0\td1\t1\n")
    return root


def test_two_folds_train_on_one_half_and_score_the_other(tmp_path: Path) -> None:
    data_dir = tiny_beir(tmp_path / "set")
    folds = plan_folds("unlabelled", data_dir, tmp_path / "work", BuildConfig(seed=3))
    assert [f.name for f in folds] == ["fold0", "fold1"]
    scored = []
    for fold in folds:
        seen = Path(fold.config.queries).read_text().splitlines()
        evaluation = load_beir(fold.eval_dir, "test")
        assert not set(seen) & {" ".join(t.split()) for t in evaluation.queries.values()}
        assert set(evaluation.qrels) == set(evaluation.queries)
        assert list(evaluation.corpus) == [f"d{i}" for i in range(10)]
        scored += evaluation.judged_query_ids
    assert sorted(scored) == sorted(f"q{i}" for i in range(10))  # every test query scored once
    again = plan_folds("unlabelled", data_dir, tmp_path / "work", BuildConfig(seed=3))
    assert [Path(f.config.queries).read_text() for f in again] == [Path(f.config.queries).read_text() for f in folds]


def test_a_set_with_train_judgements_is_given_whole_and_only_it_takes_the_labelled_protocol(tmp_path: Path) -> None:
    with_train, without = tiny_beir(tmp_path / "a", train=True), tiny_beir(tmp_path / "b")
    [unlabelled] = plan_folds("unlabelled", with_train, tmp_path / "w", BuildConfig())
    assert unlabelled.config.queries == str(with_train) and unlabelled.eval_dir == with_train
    [labelled] = plan_folds("labelled", with_train, tmp_path / "w", BuildConfig())
    assert labelled.config.train_data == str(with_train)
    assert plan_folds("labelled", without, tmp_path / "w", BuildConfig()) == []
    [corpus] = plan_folds("corpus", without, tmp_path / "w", BuildConfig())
    assert not corpus.config.has_supervision()


def fold(scores: dict[str, list[float]], seconds: float = 10.0) -> dict:
    return {"scores": scores, "stage_seconds": {"adapt": seconds}, "build_seconds": seconds, "gate": "adapted"}


def test_folds_are_pooled_per_query_and_targets_read_the_pooled_gain() -> None:
    low, high = [0.2, 0.3, 0.4, 0.5], [0.5, 0.6, 0.7, 0.8]
    scores = {"tuned@384": high, "tuned@128": high, "base@384": low, "base@128": low, "bm25": low,
              "base hybrid": high, "tuned hybrid": high}
    summary = pooled_summary([fold(scores), fold(scores, 20.0)], seed=0)
    assert summary["queries"] == 8 and summary["folds"] == 2
    assert summary["dense_gain"]["delta"] == pytest.approx(0.3)
    assert summary["share_128"] == pytest.approx(1.0)
    assert summary["stage_seconds"] == {"adapt": 30.0} and summary["max_build_seconds"] == 20.0
    sets = {"scifact": summary, "cisi": summary, "pubmedqa": {}}  # a smoke set is never checked
    checks = {text: met for text, met, _ in targets("unlabelled", sets)}
    assert [met for text, met in checks.items() if "≥ 2 of cisi" in text] == [False]  # one of the three is not two
    checks = {text: met for text, met, _ in targets("unlabelled", {**sets, "cacm": summary})}
    assert all(checks.values()), checks
    losing = pooled_summary([fold({**scores, "tuned hybrid": low})], seed=0)
    checks = {text: met for text, met, _ in targets("labelled", {"scifact": losing})}
    assert checks["SciFact: tuned hybrid ≥ base hybrid + 0.02"] is False
