"""The quality gate: the build hands back a trained model only if it beats its base on held-out queries.

After training, the candidates are scored on dev queries the training never
saw: the user's held-out queries when the user gave some (judged by their
labels, or by the teacher's top ten), else the dev split's derived task
(held-out dev concepts as queries over every chunk; the test split stays
untouched for the card). Candidates are the fully trained weights and their
average with the base's (``alpha`` of the trained: weight-space ensembling
keeps much of what the base knew), and the query-adapted model and its
query route averaged with the base, whichever the build trained; then the
base itself. The best by nDCG@10 at full dimension is installed as
``model/``. Without the user's queries a candidate must also beat the base
with a paired-bootstrap CI above zero. When the base wins, the build says so
loudly and the card explains it, rather than shipping a model that lost on
the only held-out data the build has.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fieldtune.encoding import Encoder, Precision
from fieldtune.evaluate.bootstrap import PairedDifference, paired_bootstrap
from fieldtune.evaluate.harness import EvalOptions, run_evaluation
from fieldtune.evaluate.metrics import PRIMARY_METRIC
from fieldtune.evaluate.result import EvaluationResult
from fieldtune.model_record import GATE_RECORD, GateRecord, ModelRecord
from fieldtune.models import load_model
from fieldtune.types import ScoredQuery

__all__ = [
    "GATE_RECORD", "GateConfig", "GateRecord", "average_with_base", "choose", "gain_over", "run_gate",
    "run_teacher_gate",
]

logger = logging.getLogger("fieldtune.gate")

#: the gate's score on unlabelled dev queries: minus the listwise KL divergence from the teacher
TEACHER_METRIC = "-kl(teacher)"


@dataclass(frozen=True)
class GateConfig:
    #: share of the trained weights in the averaged candidate (the rest from the base)
    average_alpha: float = 0.5
    #: the trained candidates must beat the base by at least this much nDCG@10 to be chosen
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.average_alpha < 1:
            raise ValueError(f"average_alpha must be in (0, 1); got {self.average_alpha}")


def average_with_base(tuned_dir: Path, base: str, out_dir: Path, alpha: float) -> Path:
    """Write ``alpha * tuned + (1 - alpha) * base`` weights, with the tuned model's prompts and config."""
    import torch

    tuned = load_model(str(tuned_dir), device="cpu")
    base_state = load_model(base, device="cpu").state_dict()
    state = tuned.state_dict()
    if set(state) != set(base_state):
        raise ValueError(f"{tuned_dir} and {base} have different parameters; cannot average them")
    with torch.no_grad():
        averaged = {
            name: alpha * value.float() + (1 - alpha) * base_state[name].float() if value.is_floating_point() else value
            for name, value in state.items()
        }
    tuned.load_state_dict(averaged)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tuned.save(str(out_dir))
    ModelRecord.read(tuned_dir).averaged_with(base, alpha).write(out_dir)
    return out_dir


def choose(scores: Mapping[str, float], margin: float, significant: Mapping[str, bool] | None = None) -> str:
    """The best candidate that beats the base by ``margin`` (and significantly, where ``significant`` is given).

    Ties go to the first candidate in ``scores``' order (the plain trained model before its average).
    """
    order = [name for name in scores if name != "base"]
    eligible = [name for name in order if scores[name] >= scores["base"] + margin
                and (significant is None or significant.get(name, False))]
    if not eligible:
        return "base"
    return max(eligible, key=lambda name: (scores[name], -order.index(name)))


def gain_over(result: EvaluationResult, baseline: str) -> PairedDifference | None:
    """The model's paired nDCG@10 difference to ``baseline`` at full dimension, as the evaluation measured it."""
    full = result.system().full_dim
    for comparison in result.comparisons:
        if comparison.system == baseline and comparison.metric == PRIMARY_METRIC.key and comparison.model_dim == full:
            return comparison.model_minus_system
    return None


def _log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max()
    return shifted - np.log(np.exp(shifted).sum())


def teacher_divergence(query: np.ndarray, item: ScoredQuery, document_vectors: Mapping[str, np.ndarray],
                       teacher_temperature: float, student_temperature: float) -> float:
    """KL(teacher || model) over one query's candidates: how far the model's ranking is from the teacher's."""
    documents = np.stack([document_vectors[c] for c in item.candidate_ids])
    log_p = _log_softmax(np.asarray(item.teacher_scores, dtype=np.float64) / teacher_temperature)
    log_q = _log_softmax(documents.astype(np.float64) @ query.astype(np.float64) / student_temperature)
    return float(np.sum(np.exp(log_p) * (log_p - log_q)))


def run_teacher_gate(candidates: Mapping[str, Path], base: str, dev: Sequence[ScoredQuery],
                     document_vectors: Mapping[str, np.ndarray], *, teacher_temperature: float,
                     student_temperature: float, precision: Precision, seed: int = 0,
                     require_significance: bool = False) -> GateRecord:
    """Score query-side candidates and the base by how closely they follow the teacher on unlabelled dev queries.

    Every candidate shares the base's document vectors, so only the dev queries are encoded. The score is
    minus the mean listwise KL divergence from the teacher over each query's candidates. Measured on
    SciFact, agreement with the teacher's top ten over the whole corpus fell for an adapted model (0.81 ->
    0.77) whose real nDCG@10 rose by 0.03, while this divergence fell with it: it is the proxy that ranks
    candidates the way real judgements did.
    """
    texts = [item.text for item in dev]
    per_query: dict[str, np.ndarray] = {}
    for name, model in {"base": base, **{k: str(v) for k, v in candidates.items()}}.items():
        queries = Encoder(model, precision=precision, show_progress=False).encode(texts, kind="query")
        per_query[name] = np.array([
            teacher_divergence(queries[i], item, document_vectors, teacher_temperature, student_temperature)
            for i, item in enumerate(dev)
        ])
    scores = {name: -float(per_query[name].mean()) for name in candidates} | {"base": -float(per_query["base"].mean())}
    gains: dict[str, dict[str, float]] = {}
    significant: dict[str, bool] = {}
    for name in candidates:
        gain = paired_bootstrap(per_query["base"], per_query[name], n_resamples=1000, seed=seed)
        gains[name] = {"delta": gain.delta, "ci_low": gain.ci_low, "ci_high": gain.ci_high}
        significant[name] = gain.ci_low > 0
    chosen = choose(scores, 0.0, significant if require_significance else None)
    logger.info("quality gate on %d dev queries (minus KL from the teacher): %s -> %s", len(dev),
                {k: round(v, 4) for k, v in scores.items()}, chosen)
    return GateRecord(chosen=chosen, scores=scores, directory=str(candidates.get(chosen, "")),
                      gains=gains, required_significance=require_significance, metric=TEACHER_METRIC)


def run_gate(candidates: Mapping[str, Path], base: str, dev_data: Path, *, config: GateConfig,
             precision: Precision, seed: int = 0, require_significance: bool = False) -> GateRecord:
    """Score each candidate model directory and the base on ``dev_data``; return the record of the choice.

    With ``require_significance`` (a build without the user's queries, whose dev set is derived from
    the corpus) a candidate must beat the base with a paired-bootstrap 95% CI above zero: on a hidden
    set, a point gain on derived queries alone once installed a model that lost on real ones.
    """
    options = EvalOptions(precision=precision, seed=seed, n_resamples=1000)
    scores: dict[str, float] = {}
    gains: dict[str, dict[str, float]] = {}
    significant: dict[str, bool] = {}
    for name, directory in candidates.items():
        result = run_evaluation(str(directory), dev_data, ["base"], options)
        scores[name] = result.score(PRIMARY_METRIC)
        if result.baselines:  # the base baseline, named after the base model
            scores["base"] = result.score(PRIMARY_METRIC, system=result.baselines[0])
            gain = gain_over(result, result.baselines[0])
            if gain is not None:
                gains[name] = {"delta": gain.delta, "ci_low": gain.ci_low, "ci_high": gain.ci_high}
                significant[name] = gain.ci_low > 0
    ordered = {name: scores[name] for name in candidates} | {"base": scores["base"]}
    chosen = choose(ordered, config.margin, significant if require_significance else None)
    rounded = {k: round(v, 4) for k, v in ordered.items()}
    logger.info("quality gate on the dev queries (nDCG@10): %s -> %s", rounded, chosen)
    if chosen == "base":
        logger.warning(
            "quality gate: no candidate beat the base (%.4f) on the dev queries%s (%s); the build keeps the base "
            "model's weights", ordered["base"], " with a CI above zero" if require_significance else "",
            ", ".join(f"{k} {v:.4f}" for k, v in ordered.items() if k != "base"),
        )
    return GateRecord(chosen=chosen, scores=ordered, config=asdict(config),
                      directory=str(candidates.get(chosen, "")), dev_queries_file=str(dev_data),
                      gains=gains, required_significance=require_significance)
