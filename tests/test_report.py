"""The HTML evaluation report: plots inline, under 2 MB, the queries that moved most, written by eval and the build."""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from fieldtune.cli import main
from fieldtune.evaluate.html_report import REPORT_HTML, to_html
from fieldtune.evaluate.per_query import PerQueryScores, QueryGain, biggest_changes
from fieldtune.evaluate.result import EvaluationResult
from tests.conftest import run_cli, write_beir_dir
from tests.test_records import eval_json

pytest.importorskip("matplotlib", reason="the report's plots need the report extra: pip install 'fieldtune[report]'")

MAX_BYTES = 2_000_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A set where BM25 and a dense model disagree: paraphrases (dense is at home) and rare exact tokens
# (BM25 is), among distractors on the same topics, so some queries gain and others lose.
CORPUS = [
    ("car", "Automobile upkeep", "A mechanic services the engine, replaces worn brake pads and rotates the tyres."),
    ("bike", "Bicycle chains", "Oil the chain of a bicycle every few hundred kilometres to keep shifting smooth."),
    ("code", "Error XQ-7731", "The controller reports XQ-7731 when the pump firmware fails its checksum at boot."),
    ("pump", "Pump firmware", "Updating the firmware of a pump controller is done over the serial console."),
    ("heart", "Cardiac arrest", "When the heart stops beating, chest compressions keep blood flowing to the brain."),
    ("lung", "Pneumonia", "An infection inflames the air sacs of the lungs, which may fill with fluid."),
    ("bread", "Sourdough", "A fermented starter of flour and water leavens the loaf without commercial yeast."),
    ("beer", "Brewing", "Yeast turns the sugars of malted barley into alcohol and carbon dioxide."),
    ("moon", "Lunar tides", "The gravitational pull of the moon raises the oceans on the near and far side."),
    ("sun", "Solar flares", "Sudden bursts of radiation from the sun can disturb radio communication on Earth."),
    ("tax", "Form ZB-12", "Freelancers file form ZB-12 to declare income earned outside of payroll."),
    ("wage", "Payroll", "Employers withhold income tax from each salary payment through payroll."),
]
QUERIES = [
    ("q-car", "how do I get my vehicle maintained", "car"),
    ("q-code", "XQ-7731", "code"),
    ("q-heart", "what to do when someone collapses and has no pulse", "heart"),
    ("q-bread", "making bread rise without store-bought yeast", "bread"),
    ("q-moon", "why does the sea level go up and down", "moon"),
    ("q-tax", "ZB-12", "tax"),
    ("q-bike", "lubricating a bike drivetrain", "bike"),
    ("q-sun", "space weather knocking out radios", "sun"),
]


def mixed_beir(root: Path) -> Path:
    corpus = [{"_id": i, "title": t, "text": x} for i, t, x in CORPUS]
    queries = [{"_id": q, "text": text} for q, text, _ in QUERIES]
    qrels = [(q, d, 1) for q, _, d in QUERIES]
    return write_beir_dir(root, corpus, queries, qrels)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """``fieldtune eval --report report.html --json result.json``: minilm against BM25 on the mixed set."""
    root = tmp_path_factory.mktemp("report")
    data = mixed_beir(root / "mixed")
    report, result = root / "report.html", root / "result.json"
    code = 0
    with pytest.MonkeyPatch.context() as patch:  # run_cli needs the function-scoped capsys; call main() itself
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))  # the session's private cache
        patch.setattr(sys, "argv", ["fieldtune", "eval", "--model", "minilm", "--data", str(data),
                                    "--baseline", "bm25", "--dims", "384,128,64", "--resamples", "500",
                                    "--report", str(report), "--json", str(result)])
        try:
            main()
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    assert code == 0
    return report, result, report.read_text(encoding="utf-8")


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)]


def test_eval_report_is_one_small_file_with_both_plots(evaluated: tuple[Path, Path, str]) -> None:
    import matplotlib.image

    report, _, page = evaluated
    assert report.stat().st_size < MAX_BYTES
    assert "<script" not in page and "http://" not in page and "https://" not in page  # nothing loaded from outside
    images = _images(page)
    assert len(images) == 2 and page.count("<figure class='plot'") == 2
    assert "id='ndcg-by-dimension'" in page and "id='per-query-gain'" in page
    for png in images:
        assert png.startswith(PNG_SIGNATURE)
        pixels = matplotlib.image.imread(io.BytesIO(png), format="png")
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100 and float(pixels[..., :3].std()) > 0.05


def test_per_query_scores_agree_with_the_means_and_the_lists_follow_them(evaluated: tuple[Path, Path, str]) -> None:
    _, result_path, page = evaluated
    result = EvaluationResult.read(result_path)
    per_query = result.per_query
    assert per_query is not None
    assert dict(zip(per_query.query_ids, per_query.texts, strict=True)) == {q: text for q, text, _ in QUERIES}
    for name, system in result.systems.items():
        for dim in system.dims:  # the stored per-query scores average to the reported means
            assert per_query.values(name, dim).mean() == pytest.approx(system.score("ndcg@10", dim), abs=1e-4)
    gains = per_query.gains(result.model, "384", "bm25", "full")
    wins, losses = biggest_changes(gains, 5)
    assert wins or losses, "the set is built so that BM25 and minilm disagree on some query"
    section = page.split("Queries that moved most", 1)[1]
    wins_html, losses_html = section.split("Biggest losses", 1)
    for gain in wins:
        assert f"<td class='q'>{gain.text}</td>" in wins_html and f"{gain.gain:+.4f}" in wins_html
    for gain in losses:
        assert f"<td class='q'>{gain.text}</td>" in losses_html and f"{gain.gain:+.4f}" in losses_html
    counted = re.search(r"(\d+) queries gained, (\d+) lost, (\d+) unchanged", section)
    assert counted is not None
    assert [int(n) for n in counted.groups()] == [sum(g.gain > 0 for g in gains), sum(g.gain < 0 for g in gains),
                                                  sum(g.gain == 0 for g in gains)]


def test_biggest_changes_order_and_skip_unchanged_queries() -> None:
    gains = [QueryGain(f"q{i}", f"text {i}", model, base)
             for i, (model, base) in enumerate([(0.5, 0.5), (1.0, 0.2), (0.3, 0.9), (0.6, 0.4), (0.0, 0.1)])]
    wins, losses = biggest_changes(gains, 5)
    assert [g.query_id for g in wins] == ["q1", "q3"]
    assert [g.query_id for g in losses] == ["q2", "q4"]
    assert biggest_changes(gains, 1) == (wins[:1], losses[:1])


def test_query_texts_are_escaped_and_a_file_without_per_query_scores_still_reports() -> None:
    old = EvaluationResult.from_dict(eval_json())  # written before per-query scores were kept
    page = to_html(old)
    assert len(_images(page)) == 1 and "id='per-query-gain'" not in page
    assert "kept no per-query scores" in page

    ids = ("q1", "q2")
    texts = ("<script>alert(1)</script>", "a & b")
    model = old.model
    scores = {model: {"384": np.array([1.0, 0.0])}, "minilm": {"384": np.array([0.0, 1.0])},
              "bm25": {"full": np.array([0.5, 0.5])}}
    fresh = EvaluationResult.from_dict({**old.to_dict(), "per_query": PerQueryScores.from_arrays(
        "ndcg@10", ids, texts, scores).to_dict()})
    page = to_html(fresh)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "a &amp; b" in page
    assert "id='per-query-gain'" in page


def test_per_query_scores_round_trip_and_refuse_misaligned_data() -> None:
    scores = PerQueryScores.from_arrays("ndcg@10", ["a", "b"], ["x", "y"], {"m": {"8": np.array([0.123456, 1.0])}})
    assert scores.scores["m"]["8"] == (0.1235, 1.0)
    assert PerQueryScores.from_dict(json.loads(json.dumps(scores.to_dict()))) == scores
    with pytest.raises(ValueError, match="1 scores for 2 queries"):
        PerQueryScores("ndcg@10", ("a", "b"), ("x", "y"), {"m": {"8": (0.5,)}})
    with pytest.raises(LookupError, match="have: 8"):
        scores.values("m", "16")


def test_report_must_be_md_or_html(tiny_beir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    code, _, err = run_cli(["eval", "--model", "minilm", "--data", str(tiny_beir), "--report",
                            str(tmp_path / "r.pdf")], capsys, monkeypatch)
    assert code == 2 and "--report must end in .md or .html" in err


def test_card_stage_writes_the_build_report(tmp_path: Path, evaluated: tuple[Path, Path, str]) -> None:
    from fieldtune.build import run_stage
    from fieldtune.config import BuildConfig
    from fieldtune.stages.artifacts import ArtifactCache
    from fieldtune.stages.registry import STAGES
    from fieldtune.workdir import WorkDir
    from tests.test_card import write_build
    from tests.test_records import training_record

    root = tmp_path / "build"
    write_build(root, training_record(), None)  # the records a finished build leaves, eval/derived.json among them
    (root / "eval" / "mixed.json").write_bytes(evaluated[1].read_bytes())  # an --eval-data set, with per-query data
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "d1", "text": "x"}\n', encoding="utf-8")
    workdir = WorkDir(root)
    run_stage(STAGES["card"], workdir, ArtifactCache(workdir), corpus, BuildConfig())
    page = (root / REPORT_HTML).read_text(encoding="utf-8")
    assert page.index("<h2>derived: ") < page.index("<h2>mixed: ")  # the derived set first
    assert len(_images(page)) == 3  # derived: dimension only (no per-query data); mixed: both
    assert (root / "model" / "README.md").exists()


def test_card_figures_are_files_beside_the_card_linked_relatively(tmp_path: Path,
                                                                   evaluated: tuple[Path, Path, str]) -> None:
    from fieldtune.evaluate.plots import CARD_FIGURES, card_figures

    model_dir = tmp_path / "model"
    results = {"derived": EvaluationResult.from_dict(eval_json()), "mixed": EvaluationResult.read(evaluated[1])}
    markdown = card_figures(results, model_dir)
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", markdown)
    assert links == [f"{CARD_FIGURES}/derived-ndcg-by-dimension.png", f"{CARD_FIGURES}/mixed-ndcg-by-dimension.png",
                     f"{CARD_FIGURES}/mixed-per-query-gain.png"]
    for link in links:
        assert (model_dir / link).read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.slow
def test_a_build_writes_its_report_and_an_index_of_its_model_shows_its_graph(tmp_path: Path, capsys,
                                                                              monkeypatch) -> None:
    """End to end: a tiny real build, then ``fieldtune index --model DIR/model`` and a search."""
    from fieldtune.build import BuildConfig, run_build
    from fieldtune.concepts.graph import read_graph
    from fieldtune.search import Index
    from tests.build_fixture import write_corpus
    from tests.test_build import TINY_TRAINING

    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "out"
    run_build(corpus, out, BuildConfig(budget_minutes=5, train_overrides=dict(TINY_TRAINING)))
    page = (out / REPORT_HTML).read_text(encoding="utf-8")
    assert (out / REPORT_HTML).stat().st_size < MAX_BYTES
    assert "on derived</h2>" in page and len(_images(page)) == 2  # the derived set: both figures

    code, _, err = run_cli(["index", "--corpus", str(corpus), "--out", str(tmp_path / "idx"), "--model",
                            str(out / "model")], capsys, monkeypatch)
    assert code == 0, err
    index = Index.open(tmp_path / "idx")
    assert index.info()["concepts"] == {"count": len(read_graph(out).concepts), "graph": str(out / "graph.json")}
    names = [c.name for c in index.search("Kostka polynomial", k=1)[0].chunk_concepts]
    assert "Kostka polynomial" in names


def test_a_result_without_baselines_has_the_dimension_plot_only() -> None:
    data = eval_json()
    alone = EvaluationResult.from_dict({**data, "systems": {data["model"]: data["systems"][data["model"]]},
                                        "comparisons": []})
    page = to_html(alone)
    assert len(_images(page)) == 1 and "id='ndcg-by-dimension'" in page
    assert "Queries that moved most" not in page and "Paired bootstrap" not in page


def test_without_the_report_extra(tiny_beir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """``eval --report x.html`` stops before evaluating and names the extra; a build's page keeps its tables."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    code, _, err = run_cli(["eval", "--model", "minilm", "--data", str(tiny_beir), "--report",
                            str(tmp_path / "r.html")], capsys, monkeypatch)
    assert code == 2 and "fieldtune[report]" in err and not (tmp_path / "r.html").exists()
    page = to_html(EvaluationResult.from_dict(eval_json()))
    assert not _images(page) and "No plots" in page and "fieldtune[report]" in page
    assert "Paired bootstrap differences" in page
