"""Stage ``card``: the model card (model/README.md) from the build's records and evaluations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fieldtune.card import write_card
from fieldtune.stages.artifacts import EVAL, GRAPH, MODEL_CARD, MODEL_RECORDS
from fieldtune.stages.base import Stage, StageContext
from fieldtune.stages.ingest import corpus_input


def run(ctx: StageContext) -> Mapping[str, Any]:
    for name in (EVAL, GRAPH, *MODEL_RECORDS):
        ctx.artifacts.path(name)  # recorded reads: write_card reads these files itself
    write_card(ctx.workdir.root, corpus=str(ctx.corpus), config=ctx.config)
    return {}


STAGE = Stage(
    name="card",
    inputs=(EVAL, GRAPH, *MODEL_RECORDS),
    outputs=(MODEL_CARD,),
    run=run,
    params=lambda config: {},
    sources=lambda config, corpus: {"corpus": corpus_input(corpus)},
)
