"""The card's YAML metadata as the Hugging Face Hub reads it: ``model-index`` results, datasets, base model, tags.

sentence-transformers' own cards file every evaluator's numbers under
``model-index`` (one result per task and dataset, each with its metrics); the
Hub renders them beside the card and leaderboards read them. We file ours the
same way, from the :class:`~fieldtune.evaluate.result.EvaluationResult` of each
set the build scored (the derived set and every ``--eval-data`` set): task
``information-retrieval``, the set as the dataset, the Matryoshka dimension as
the dataset's config (``dim_384``), and every metric the evaluation recorded
for the model under test. Baselines and the confidence intervals of the gains
stay in the card's own tables: ``model-index`` describes this model only.

:func:`read_model_index` is the inverse, so a test (or a user) can check that a
card says what ``fieldtune eval --json`` measured.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import ModelCardData
from huggingface_hub.repocard_data import EvalResult

from fieldtune.evaluate.result import EvaluationResult
from fieldtune.models import REGISTRY

TASK_TYPE = "information-retrieval"
TASK_NAME = "Information Retrieval"
#: the name a build files its corpus-derived evaluation under (``eval/derived.json``)
DERIVED_SET = "derived"
#: the Matryoshka dimension is the dataset's config, so each dimension is its own model-index result
DIM_CONFIG_PREFIX = "dim_"
#: BEIR sets published on the Hub as ``BeIR/<name>``; an --eval-data directory named like one is taken to be it
BEIR_HUB_SETS = frozenset({
    "arguana", "climate-fever", "cqadupstack", "dbpedia-entity", "fever", "fiqa", "hotpotqa", "msmarco",
    "nfcorpus", "nq", "quora", "scidocs", "scifact", "trec-covid", "webis-touche2020",
})
TAGS = ("sentence-transformers", "sentence-similarity", "feature-extraction", "fieldtune", "retrieval")


@dataclass(frozen=True)
class IndexedScore:
    """One number of a card's ``model-index``, keyed the way :class:`EvaluationResult` is."""

    set_name: str
    dim: str
    metric: str
    value: float


def hub_dataset_id(set_name: str) -> str | None:
    """The Hub id of an evaluation set, or None for a set that lives only on this machine (the derived set)."""
    return f"BeIR/{set_name}" if set_name in BEIR_HUB_SETS else None


def hub_base_model(base: str | None) -> str | None:
    """The base model as a Hub id: a registered name's hub id, a hub id as given, nothing for a local directory."""
    if not base:
        return None
    if base in REGISTRY:
        return REGISTRY[base].hub_id
    if Path(base).expanduser().exists() or base.count("/") != 1 or base.startswith((".", "/", "~")):
        return None
    return base


def _dataset_label(set_name: str, dim: str) -> str:
    what = "fieldtune derived test set (held-out concepts)" if set_name == DERIVED_SET else set_name
    return f"{what}, {dim} dimensions"


def eval_results(evaluations: Mapping[str, EvaluationResult]) -> list[EvalResult]:
    """Every metric of the model under test, at every dimension it was scored at, on every set."""
    results = []
    for set_name, evaluation in evaluations.items():
        system = evaluation.system()
        for dim, metrics in system.results.items():
            for metric, value in metrics.items():
                results.append(EvalResult(
                    task_type=TASK_TYPE, task_name=TASK_NAME,
                    dataset_type=hub_dataset_id(set_name) or set_name, dataset_name=_dataset_label(set_name, dim),
                    dataset_config=f"{DIM_CONFIG_PREFIX}{dim}", dataset_split=evaluation.dataset.split,
                    metric_type=metric, metric_name=metric.upper(), metric_value=float(value),
                ))
    return results


def card_data(*, model_name: str, base_model: str | None, evaluations: Mapping[str, EvaluationResult],
              matryoshka: bool, loss: str | None) -> ModelCardData:
    """The card's metadata block; ``model-index`` is present only when there are evaluations to file."""
    datasets = sorted({hub for name in evaluations if (hub := hub_dataset_id(name))})
    tags = [*TAGS, *(["matryoshka"] if matryoshka else []), *([f"loss:{loss}"] if loss else [])]
    results = eval_results(evaluations)
    return ModelCardData(
        library_name="sentence-transformers", pipeline_tag="sentence-similarity",
        base_model=hub_base_model(base_model), tags=tags, datasets=datasets or None,
        model_name=model_name if results else None, eval_results=results or None,
    )


def read_model_index(data: ModelCardData) -> list[IndexedScore]:
    """The ``model-index`` numbers of a parsed card, keyed by set, dimension and metric (inverse of eval_results)."""
    by_hub_id = {f"BeIR/{name}": name for name in BEIR_HUB_SETS}
    scores = []
    for result in data.eval_results or []:
        config = result.dataset_config or ""
        if result.task_type != TASK_TYPE or not config.startswith(DIM_CONFIG_PREFIX):
            continue  # a result some other tool filed: not ours to read
        scores.append(IndexedScore(set_name=by_hub_id.get(result.dataset_type, result.dataset_type),
                                   dim=config[len(DIM_CONFIG_PREFIX):], metric=result.metric_type,
                                   value=float(result.metric_value)))
    return scores
