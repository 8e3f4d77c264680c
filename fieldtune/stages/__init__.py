"""The build pipeline: one module per stage, in the order of :mod:`fieldtune.stages.order`.

:mod:`fieldtune.stages.registry` holds :data:`~fieldtune.stages.registry.STAGES`,
built from that order. This package file imports nothing, so that the command
line can read the order (to list the stage commands) without loading the stages.
"""
