"""Stage ``card``: the model card (model/README.md) and report.html from the build's records and evaluations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fieldtune.card import write_card
from fieldtune.evaluate.html_report import REPORT_HTML, read_results, write_report
from fieldtune.evaluate.plots import CARD_FIGURES
from fieldtune.stages.artifacts import DERIVED, EVAL, GRAPH, MODEL, MODEL_CARD, MODEL_RECORDS
from fieldtune.stages.base import Stage, StageContext
from fieldtune.stages.ingest import corpus_input


def run(ctx: StageContext) -> Mapping[str, Any]:
    for name in (EVAL, GRAPH, *MODEL_RECORDS):
        ctx.artifacts.path(name)  # recorded reads: write_card reads these files itself
    write_card(ctx.workdir.root, corpus=str(ctx.corpus), config=ctx.config, figures=True)
    write_report(read_results(ctx.artifacts.path(EVAL), first=DERIVED), ctx.output(REPORT_HTML))
    return {}


STAGE = Stage(
    name="card",
    inputs=(EVAL, GRAPH, *MODEL_RECORDS),
    # the figures live in model/ so that a push uploads them with the card
    outputs=(MODEL_CARD, f"{MODEL}/{CARD_FIGURES}", REPORT_HTML),
    run=run,
    params=lambda config: {},
    sources=lambda config, corpus: {"corpus": corpus_input(corpus)},
)
