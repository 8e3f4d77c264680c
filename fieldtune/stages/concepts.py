"""Stage ``concepts``: the concept knowledge graph of the corpus (graph.json, graph.graphml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fieldtune.concepts import build_graph
from fieldtune.config import BuildConfig
from fieldtune.stages.artifacts import CACHE, CHUNKS, GRAPH, GRAPHML
from fieldtune.stages.base import Stage, StageContext


def run(ctx: StageContext) -> Mapping[str, Any]:
    graph = build_graph(ctx.artifacts.chunks(), config=ctx.config.concepts, model=ctx.config.base,
                        cache_dir=ctx.workdir.path(CACHE))
    graph.write(ctx.output(GRAPH).parent)
    scalars = {k: v for k, v in graph.stats.items() if isinstance(v, (int, float, str, dict))}
    return {"concepts": len(graph.concepts), "edges": len(graph.edges), **scalars}


def _params(config: BuildConfig) -> Mapping[str, Any]:
    # the floor as resolved: a build that leaves min_df unset keys like one that gave the same floor explicitly
    concepts = {**asdict(config.concepts), "min_df": config.concepts.doc_floor()}
    return {"config": concepts, "model": config.base, "extractor": config.concepts.extractor}


STAGE = Stage(
    name="concepts",
    inputs=(CHUNKS,),
    outputs=(GRAPH, GRAPHML),
    run=run,
    params=_params,
)
