"""The quality gate: the build hands back the trained model only if it is not worse than its base.

After training, three candidates are scored on the *dev* split's derived
retrieval task (held-out dev concepts as queries over every chunk; the test
split stays untouched for the card): the trained weights, the trained
weights averaged with the base's (``alpha`` of the trained, the rest of the
base: weight-space ensembling keeps much of what the base knew and often
generalises better off-domain), and the base itself. The best by nDCG@10 at
full dimension is installed as ``model/``; when that is the base, the build
says so loudly and the card explains it, rather than shipping a model that
lost on the only held-out data the build has.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from fieldtune.encoding import Precision
from fieldtune.evaluate.harness import EvalOptions, run_evaluation
from fieldtune.evaluate.metrics import PRIMARY_METRIC
from fieldtune.model_record import GATE_RECORD, GateRecord, ModelRecord
from fieldtune.models import load_model

__all__ = ["GATE_RECORD", "GateConfig", "GateRecord", "average_with_base", "choose", "run_gate"]

logger = logging.getLogger("fieldtune.gate")


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


def choose(scores: dict[str, float], margin: float) -> str:
    """The best trained candidate if it beats the base by ``margin``, else ``"base"``."""
    trained = {name: score for name, score in scores.items() if name != "base"}
    best = max(trained, key=lambda name: (trained[name], name == "trained"))
    return best if trained[best] >= scores["base"] + margin else "base"


def run_gate(tuned_dir: Path, base: str, dev_data: Path, work: Path, *, config: GateConfig,
             precision: Precision, seed: int = 0) -> GateRecord:
    """Score the candidates on ``dev_data``; return the record (``chosen`` and the directory to install)."""
    averaged = average_with_base(tuned_dir, base, work / "averaged", config.average_alpha)
    candidates = {"trained": tuned_dir, "averaged": averaged}
    options = EvalOptions(precision=precision, seed=seed, n_resamples=1000)
    scores: dict[str, float] = {}
    for name, directory in candidates.items():
        result = run_evaluation(str(directory), dev_data, ["base"] if name == "trained" else [], options)
        scores[name] = result.score(PRIMARY_METRIC)
        if result.baselines:  # the base baseline, named after the base model
            scores["base"] = result.score(PRIMARY_METRIC, system=result.baselines[0])
    chosen = choose(scores, config.margin)
    rounded = {k: round(v, 4) for k, v in scores.items()}
    logger.info("quality gate on the dev split (nDCG@10): %s -> %s", rounded, chosen)
    if chosen == "base":
        logger.warning(
            "quality gate: neither the trained model (%.4f) nor its average with the base (%.4f) beat the base "
            "(%.4f) on the dev split; the build keeps the base model's weights",
            scores["trained"], scores["averaged"], scores["base"],
        )
    return GateRecord(chosen=chosen, scores=scores, config=asdict(config),
                      directory=str(candidates.get(chosen, "")), dev_queries_file=str(dev_data))
