"""Stage ``eval``: the built model against the base and BM25 on the derived test set and every --eval-data set."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.evaluate.harness import EvalOptions, run_evaluation
from fieldtune.evaluate.report import to_markdown
from fieldtune.stages.artifacts import DERIVED, EVAL, MODEL
from fieldtune.stages.base import Stage, StageContext

BASELINES = ("base", "bm25")


def external_sets(config: BuildConfig) -> dict[str, Path]:
    """The --eval-data sets by the name their results are filed under."""
    return {Path(p).name: Path(p) for p in config.eval_data}


def _sources(config: BuildConfig, corpus: Path) -> Mapping[str, Path]:
    return {f"data:{name}": path for name, path in external_sets(config).items()}


def run(ctx: StageContext) -> Mapping[str, Any]:
    options = EvalOptions(precision=ctx.config.encode_precision(), seed=ctx.config.seed)
    model = str(ctx.artifacts.path(MODEL))
    sets = {"derived": ctx.artifacts.path(DERIVED), **external_sets(ctx.config)}
    summary = {}
    for name, path in sets.items():
        result = run_evaluation(model, path, list(BASELINES), options)
        result.write(ctx.output(f"{EVAL}/{name}.json"))
        ctx.output(f"{EVAL}/{name}.md").write_text(to_markdown(result), encoding="utf-8")
        summary[name] = result.full_scores("ndcg@10")
    return {"ndcg@10": summary}


def _params(config: BuildConfig) -> Mapping[str, Any]:
    return {"precision": config.encode_precision().value, "seed": config.seed,
            "sets": sorted(["derived", *external_sets(config)])}


STAGE = Stage(
    name="eval",
    inputs=(MODEL, DERIVED),
    outputs=(EVAL,),
    run=run,
    params=_params,
    sources=_sources,
)
