"""The Python API: fieldtune.build / fieldtune.evaluate / fieldtune.Index, the README's example run as written."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fieldtune
from fieldtune.api import build_config
from fieldtune.config import BuildConfig, BuildConfigError
from fieldtune.errors import InputError
from fieldtune.ingest import OnError

from .build_fixture import write_corpus
from .conftest import run_cli, write_beir_dir
from .test_card import expected_index, index_by_key

README = Path(__file__).resolve().parents[1] / "README.md"
EXAMPLE_MARK = "<!-- python-api-example"


def readme_example() -> str:
    """The Python block that follows the example marker in README.md."""
    text = README.read_text(encoding="utf-8")
    found = re.search(re.escape(EXAMPLE_MARK) + r".*?-->\s*```python\n(.*?)```", text, flags=re.DOTALL)
    assert found, f"README.md has no ```python block after {EXAMPLE_MARK}"
    return found.group(1)


def test_import_is_cheap_and_the_api_names_resolve() -> None:
    """`import fieldtune` loads neither torch nor the pipeline; touching fieldtune.build loads no model library."""
    code = ("import sys, fieldtune; assert 'torch' not in sys.modules and 'fieldtune.build' not in sys.modules; "
            "from fieldtune.build import run_build; import fieldtune.evaluate.result; "
            "assert callable(fieldtune.build) and callable(fieldtune.evaluate); "
            "assert 'sentence_transformers' not in sys.modules; print(fieldtune.Index.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(README.parent)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Index"


def test_options_map_onto_build_config() -> None:
    config = build_config(base="minilm", budget_minutes=2, max_tokens=128, min_df=3, on_error="skip",
                          pseudo_queries="titles, concepts", precision="auto")
    assert isinstance(config, BuildConfig)
    assert config.chunking.max_tokens == 128 and config.chunking.overlap == BuildConfig().chunking.overlap
    assert config.concepts.min_df == 3 and config.on_error is OnError.SKIP
    assert config.pseudo_queries == ("titles", "concepts") and config.precision is None
    assert config.training_mode().value == "query"  # pseudo-queries make it a query-side build, as on the CLI


def test_an_unknown_option_names_the_closest_ones(tmp_path: Path) -> None:
    with pytest.raises(BuildConfigError, match=r"unknown build option 'max_token'; did you mean 'max_tokens'\?"):
        fieldtune.build(tmp_path / "corpus.jsonl", out=tmp_path / "out", max_token=128)
    with pytest.raises(BuildConfigError, match=r"did you mean 'budget_minutes'\?"):
        build_config(budget_minute=3)
    with pytest.raises(BuildConfigError, match=r"mining=MiningConfig\(margin=\.\.\.\) or gate=GateConfig"):
        build_config(margin=0.5)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_bad_values_fail_before_any_stage_with_the_option_named(tmp_path: Path) -> None:
    with pytest.raises(BuildConfigError, match="dev_fraction must be in"):
        build_config(dev_fraction=2)
    with pytest.raises(BuildConfigError, match="on_error must be one of stop, skip"):
        build_config(on_error="ignore")
    with pytest.raises(InputError, match="is not a BEIR directory with qrels/"):
        build_config(eval_data=str(tmp_path))
    with pytest.raises(InputError, match="does not exist"):
        build_config(queries=tmp_path / "missing.txt")
    with pytest.raises(BuildConfigError, match="unknown pseudo-query source"):
        build_config(pseudo_queries=["titels"])


def test_evaluate_gives_the_numbers_of_eval_json(tiny_beir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI is a layer over the API: the same model, set and options give the same record."""
    result = fieldtune.evaluate("minilm", tiny_beir, baselines=["bm25"], dims=[128, 384], resamples=200)
    code, _, err = run_cli(["eval", "--model", "minilm", "--data", str(tiny_beir), "--baseline", "bm25",
                            "--dims", "384,128", "--resamples", "200", "--json", str(tmp_path / "r.json")],
                           capsys, monkeypatch)
    assert code == 0, err
    from_cli = json.loads((tmp_path / "r.json").read_text())
    from_api = result.to_dict()
    for record in (from_cli, from_api):
        record.pop("seconds")
    assert from_api == from_cli
    assert result.system().dims == ("384", "128") and result.baselines == ("bm25",)


@pytest.mark.slow
def test_the_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """README.md's Python API example, unchanged, on the tiny corpus (corpus.jsonl) and a tiny BEIR set."""
    write_corpus(tmp_path / "corpus.jsonl")
    write_beir_dir(tmp_path / "my-eval-set")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_example(), str(README), "exec"), namespace)
    result, evaluation, index = namespace["result"], namespace["evaluation"], namespace["index"]
    assert isinstance(result, fieldtune.BuildResult) and isinstance(evaluation, fieldtune.EvaluationResult)
    assert set(result.evaluations) == {"derived", "my-eval-set"}
    assert (result.model_dir / "README.md").exists() and (tmp_path / "my-eval-set.json").exists()
    assert fieldtune.EvaluationResult.read(tmp_path / "my-eval-set.json") == evaluation
    assert len(index.search("heat kernel on a manifold", k=3)) == 3
    # the card files every evaluation of the build, the --eval-data set included
    assert index_by_key(result.model_dir / "README.md") == expected_index(result.evaluations)
