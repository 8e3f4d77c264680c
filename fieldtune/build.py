"""``fieldtune build``: run the stages of :data:`fieldtune.stages.STAGES` over one work directory.

corpus -> chunks -> concept graph -> pairs -> hard negatives -> tuned model ->
quality gate -> evaluation -> card. Every stage runs through
:class:`~fieldtune.workdir.WorkDir`: a stage whose inputs, sources and
parameters are unchanged is skipped, an interrupted stage runs again
(training resumes from its last checkpoint), and nothing already built is
replaced by a partial artifact.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from fieldtune.config import BuildConfig, BuildConfigError
from fieldtune.evaluate.result import EvaluationResult
from fieldtune.stages.artifacts import EVAL, MODEL, ArtifactCache, Artifacts, covers
from fieldtune.stages.base import Stage, StageContext, guard_reads
from fieldtune.stages.ingest import CorpusTooSmallError
from fieldtune.stages.registry import STAGES, stages_until
from fieldtune.training.distributed import world_size
from fieldtune.workdir import StageResult, WorkDir

logger = logging.getLogger("fieldtune.build")

__all__ = ["STAGES", "BuildConfig", "BuildResult", "CorpusTooSmallError", "run_build", "run_stage"]


@dataclass
class BuildResult:
    """What a build made (returned by :func:`run_build` and ``fieldtune.build``).

    ``out`` is the work directory; ``stages`` says, per stage in order, whether
    it ran or was skipped as unchanged and how long it took; ``evaluations``
    holds the evaluations written to ``eval.json`` (the derived set, then each
    ``--eval-data`` set) by name; ``seconds`` is the wall time of this run;
    ``model_dir`` is where the installed model is (base or tuned: the gate decides).
    """

    out: Path
    stages: list[StageResult]
    evaluations: dict[str, EvaluationResult]
    seconds: float

    @property
    def model_dir(self) -> Path:
        return self.out / MODEL


def _nested_outputs(stage: Stage) -> list[str]:
    """Outputs of later stages that live inside this stage's inputs or outputs (a card inside model/).

    They belong to the later stage, so they are left out of this stage's
    hashes. An earlier stage's output inside an input directory (the queries
    stage's ``queries/train.jsonl`` in the teacher's ``queries``) is what this
    stage reads: it stays in, so new queries re-run the teacher.
    """
    own = stage.inputs + stage.outputs
    ordered = list(STAGES.values())
    later = ordered[ordered.index(stage) + 1:] if stage in ordered else ordered
    return [out for other in later if other is not stage for out in other.outputs
            if any(covers(mine, out) and mine != out for mine in own)]


def run_stage(stage: Stage, workdir: WorkDir, cache: ArtifactCache, corpus: Path, config: BuildConfig) -> StageResult:
    """Run one stage unless its key (inputs, sources, parameters) is unchanged."""
    artifacts = Artifacts(cache, stage.name, stage.inputs)
    ctx = StageContext(config, corpus, workdir, artifacts, stage.outputs, stage.scratch)
    inputs = {name: workdir.path(name) for name in stage.inputs} | dict(stage.sources(config, corpus))

    def build() -> dict:
        logger.info("stage %s ...", stage.name)
        with guard_reads(stage, workdir):
            return dict(stage.run(ctx))

    result = workdir.run_stage(stage.name, inputs=inputs, params=stage.params(config), outputs=stage.outputs,
                               build=build, exclude=_nested_outputs(stage))
    if not result.skipped:
        cache.invalidate(stage.outputs)
    return result


def run_build(corpus: str | Path, out: str | Path, config: BuildConfig | None = None, *,
              until: str = "card") -> BuildResult:
    """Run every stage up to ``until`` (inclusive); return what was built and the evaluations."""
    config = config or BuildConfig()
    if world_size() > 1:  # every rank would run every stage into one work directory
        raise BuildConfigError(
            f"fieldtune build runs in one process ({world_size()} were started): run `fieldtune mine CORPUS --out DIR` "
            "once, then `torchrun --nproc_per_node=N -m fieldtune train CORPUS --out DIR` (README: Beyond one machine)"
        )
    plan = [stage for stage in stages_until(until) if stage.enabled(config)]
    if not plan or plan[-1].name != until:
        raise BuildConfigError(
            f"stage {until!r} does not run in a {config.training_mode().value!r} build"
            + (" (it adapts the query encoder: give --queries or --train-data)" if not config.has_supervision() else "")
        )
    started = time.time()
    workdir = WorkDir(out)
    cache = ArtifactCache(workdir)
    results = [run_stage(stage, workdir, cache, Path(corpus), config) for stage in plan]
    evaluations = {p.stem: EvaluationResult.read(p) for p in sorted(workdir.path(EVAL).glob("*.json"))}
    return BuildResult(workdir.root, results, evaluations, round(time.time() - started, 1))
