"""Stage ``adapt``: train the query encoder against the teacher; documents keep the base's embeddings.

The result (``adapted/model``) is a sentence-transformers model with a query
route (the trained copy) and a document route (the base, unchanged), so an
index built with the base stays valid and no document is re-encoded: the
base's document vectors are computed once (cached) and read by every step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.encoding import Encoder
from fieldtune.stages.artifacts import ADAPTED, ADAPTED_MODEL, CHUNKS, SCORED
from fieldtune.stages.base import Stage, StageContext


def _params(config: BuildConfig) -> dict[str, Any]:
    return config.query_side_config().to_dict()


def run(ctx: StageContext) -> Mapping[str, Any]:
    config = ctx.config
    texts = ctx.artifacts.chunk_texts()
    ids = list(texts)
    vectors = Encoder(config.base, precision=config.encode_precision()).encode([texts[i] for i in ids], kind="document")
    document_vectors = dict(zip(ids, vectors, strict=True))
    from fieldtune.training.query_side import train_query_side  # torch: loaded when the stage runs, not with the CLI

    result = train_query_side(ctx.artifacts.scored_queries("train"), document_vectors,
                              model_dir=ctx.output(ADAPTED_MODEL), config=config.query_side_config(),
                              dev_examples=ctx.artifacts.scored_queries("dev"))
    stats = {k: v for k, v in asdict(result).items() if k != "record"}
    return json.loads(json.dumps(stats, default=str))


STAGE = Stage(
    name="adapt",
    inputs=(f"{SCORED}/train.jsonl", f"{SCORED}/dev.jsonl", CHUNKS),
    outputs=(ADAPTED_MODEL,),
    scratch=(ADAPTED,),
    run=run,
    params=_params,
    enabled=BuildConfig.adapts_query_side,
)
