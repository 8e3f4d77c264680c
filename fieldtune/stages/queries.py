"""Stage ``queries``: the user's queries (``--queries``) or labelled pairs (``--train-data``), split train/dev.

The dev share is held out for the quality gate; evaluation sets are never read
(a BEIR directory contributes only the queries judged in its train/dev qrels).
Pseudo-queries (``--pseudo-queries``, :mod:`fieldtune.pseudo_queries`) made
from the chunks and the concept graph are split the same way when the user
gave no queries; beside the user's queries they join the train split only, so
the dev set stays the user's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.pseudo_queries import pseudo_queries
from fieldtune.stages.artifacts import CHUNKS, DOCUMENTS, GRAPH, USER_QUERIES
from fieldtune.stages.base import Stage, StageContext
from fieldtune.supervision import SupervisionReport, read_queries, read_train_data, split_dev
from fieldtune.types import PseudoQuery
from fieldtune.workdir import write_jsonl

logger = logging.getLogger("fieldtune.stages.queries")

QUERY_SPLITS = ("train", "dev")


def _sources(config: BuildConfig, corpus: Path) -> Mapping[str, Path]:
    given = {"queries": config.queries, "train_data": config.train_data}
    return {label: Path(path) for label, path in given.items() if path}


def _pseudo_queries(ctx: StageContext) -> list[PseudoQuery]:
    """The configured pseudo-queries (none unless ``--pseudo-queries``; only then are chunks and graph read)."""
    if not ctx.config.pseudo_queries:
        return []
    return pseudo_queries(ctx.artifacts.chunks(), ctx.artifacts.graph(), ctx.config.pseudo_query_config())


def run(ctx: StageContext) -> Mapping[str, Any]:
    config = ctx.config
    report = SupervisionReport()
    if config.train_data:
        doc_ids = {d.id for d in ctx.artifacts.documents()}
        items: list = read_train_data(config.train_data, doc_ids, report=report)
    else:
        items = []
    if config.queries:
        labelled = {item.text for item in items}
        items += [q for q in read_queries(config.queries, report=report) if q.text not in labelled]
    pseudo = _pseudo_queries(ctx)
    train, dev = split_dev(items or pseudo, config.dev_fraction, seed=config.seed)
    if items and pseudo:
        known = {item.text for item in items}
        train += [query for query in pseudo if query.text not in known]
    logger.info("queries: %s; %d pseudo-queries; %d for training, %d held out for the gate",
                report.summary(), len(pseudo), len(train), len(dev))
    for split, part in zip(QUERY_SPLITS, (train, dev), strict=True):
        write_jsonl(ctx.output(f"{USER_QUERIES}/{split}.jsonl"), (item.to_dict() for item in part))
    stats = {"train": len(train), "dev": len(dev), "labelled": sum(hasattr(i, "positive_ids") for i in items),
             "report": report.summary()}
    return {**stats, "pseudo": len(pseudo)} if config.pseudo_queries else stats


def _params(config: BuildConfig) -> Mapping[str, Any]:
    llm = {"llm": [config.llm.model, config.llm.api.value]} if config.llm and "llm" in config.pseudo_queries else {}
    return {"dev_fraction": config.dev_fraction, "seed": config.seed,
            "pseudo_queries": list(config.pseudo_queries), "pseudo_query_cap": config.pseudo_query_cap, **llm}


STAGE = Stage(
    name="queries",
    inputs=(DOCUMENTS, CHUNKS, GRAPH),
    outputs=tuple(f"{USER_QUERIES}/{split}.jsonl" for split in QUERY_SPLITS),
    run=run,
    params=_params,
    sources=_sources,
    enabled=BuildConfig.adapts_query_side,
)
