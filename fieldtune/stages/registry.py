"""The registry of the build's stages, in the one order of :mod:`fieldtune.stages.order`.

``fieldtune build``, the per-stage commands (``fieldtune concepts|pairs|mine|train``)
and skip/resume are all derived from :data:`fieldtune.stages.order.ORDER`. A stage
is one module here exporting ``STAGE`` (a :class:`~fieldtune.stages.base.Stage`:
name, declared inputs and outputs, parameters, run function); adding one (a
teacher, say) is one new module and one line in ``ORDER``, at its place. Its
inputs must be outputs of stages before it (checked at import).
"""

from __future__ import annotations

import importlib

from fieldtune.registry import Registry
from fieldtune.stages.artifacts import UndeclaredArtifactError, covers
from fieldtune.stages.base import Stage, StageContext
from fieldtune.stages.order import ORDER

STAGES: Registry[Stage] = Registry("stage")
for _entry in ORDER:
    _stage = importlib.import_module(f"fieldtune.stages.{_entry.module}").STAGE
    if _stage.name != _entry.name:
        raise RuntimeError(
            f"fieldtune.stages.{_entry.module} defines stage {_stage.name!r}, ORDER says {_entry.name!r}"
        )
    STAGES.register(_entry.name, _stage)


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
