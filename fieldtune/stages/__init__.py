"""The build pipeline as one ordered list of stages.

``fieldtune build``, the per-stage commands (``fieldtune concepts|pairs|mine|train``)
and skip/resume are all derived from :data:`STAGES`. A stage is one module here
exporting ``STAGE`` (a :class:`~fieldtune.stages.base.Stage`: name, declared
inputs and outputs, parameters, run function); adding one (a teacher, say) is
one new module and one line below, at its place in the order. Its inputs must
be outputs of stages before it (checked at import).
"""

from __future__ import annotations

from fieldtune.registry import Registry
from fieldtune.stages import card, chunk, concepts, evaluate, gate, ingest, mine, pairs, train
from fieldtune.stages.artifacts import UndeclaredArtifactError, covers
from fieldtune.stages.base import Stage, StageContext

STAGES: Registry[Stage] = Registry("stage")
for _module in (ingest, chunk, concepts, pairs, mine, train, gate, evaluate, card):
    STAGES.register(_module.STAGE.name, _module.STAGE)


def _check_order() -> None:
    published: list[str] = []
    for stage in STAGES.values():
        for name in stage.inputs:
            if not any(covers(output, name) or covers(name, output) for output in published):
                raise RuntimeError(f"stage {stage.name!r} reads {name!r}, which no earlier stage writes")
        published.extend(stage.outputs)


_check_order()


def stages_until(name: str) -> list[Stage]:
    """The stages from the first up to ``name``, inclusive."""
    target = STAGES[name]  # unknown names raise UnknownNameError listing the stages
    ordered = list(STAGES.values())
    return ordered[: ordered.index(target) + 1]


__all__ = ["STAGES", "Stage", "StageContext", "UndeclaredArtifactError", "stages_until"]
