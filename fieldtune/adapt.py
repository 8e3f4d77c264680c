"""``fieldtune adapt``: train an index's query encoder on the queries people searched, and swap it in.

The loop that ``serve --log-queries`` opens: the logged queries (or any query
file :func:`~fieldtune.supervision.read_queries` reads) are scored by the
hybrid teacher over the index's *own* chunks and stored document vectors, a
dev share is held out, the query side is trained
(:func:`~fieldtune.training.query_side.train_query_side`), and the adapted
encoder replaces the index's current one only if it follows the teacher more
closely on the dev queries (a smaller listwise divergence over their candidates). The swap is one atomic write of
``index.json`` (:mod:`fieldtune.search.query_models`); no segment is written,
so every stored document vector stays byte-identical, and a running
``serve`` picks the new encoder up on its next search.

Why the stored vectors and not a re-encode: the index keeps each chunk's
vector as int8 with a per-row scale (or float16); dequantised, a cosine is off
by about 5e-4 (:mod:`fieldtune.search.store`), far below what moves a
teacher's top ten or a listwise loss at temperature 0.1, while re-encoding a
corpus costs minutes on a CPU. An index that stores only a Matryoshka prefix
(``index --dim``) lacks the full vectors the query side trains against, and is
refused rather than silently re-encoded.

Each run appends what it did, and why it swapped or not, to ``<index>/adapt.jsonl``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.encoding import Encoder, document_text
from fieldtune.errors import InputError
from fieldtune.gate import teacher_divergence
from fieldtune.search.manifest import IndexManifest
from fieldtune.search.query_models import index_document_fingerprint, next_model_dir, query_encoder, roll_back, swap_in
from fieldtune.search.state import IndexState, load_current
from fieldtune.supervision import SupervisionReport, read_queries, split_dev
from fieldtune.supervision.common import QueryCollector, QueryFormat, json_objects, line_label, record_id, record_text
from fieldtune.teachers import CandidatePool, make_teacher
from fieldtune.training.query_side import train_query_side
from fieldtune.training.query_side_config import QuerySideConfig
from fieldtune.types import Query, ScoredQuery

logger = logging.getLogger("fieldtune.adapt")

#: What each run records, one JSON object per line, in the index directory.
ADAPT_LOG = "adapt.jsonl"
#: Chunks each teacher source contributes per query (the build's default ``teacher_k``).
TEACHER_K = 50
#: Fewer queries than this leave nothing to hold out.
MIN_QUERIES = 2


@dataclass(frozen=True, kw_only=True)
class AdaptOptions:
    """Settings of one adapt run; ``overrides`` are extra :class:`QuerySideConfig` fields (e.g. ``max_steps``).

    ``keep_rejected`` keeps an encoder that lost on dev under ``query-models/`` (to inspect it, or
    swap it in by hand with :func:`fieldtune.search.query_models.swap_in`); by default it is deleted.
    """

    budget_minutes: float = 5.0
    seed: int = 0
    dev_fraction: float = 0.2
    teacher_k: int = TEACHER_K
    overrides: Mapping[str, Any] = field(default_factory=dict)
    keep_rejected: bool = False


@dataclass(frozen=True)
class AdaptResult:
    """What an adapt run did: the dev scores of both encoders, and whether (and why) it swapped."""

    swapped: bool
    reason: str
    current_score: float
    adapted_score: float
    train_queries: int
    dev_queries: int
    steps: int
    seconds: float
    model: str | None  # the trained model relative to the index root (None: rejected and deleted)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_adapt_queries(path: Path) -> list[Query]:
    """The queries of ``path``: a ``serve --log-queries`` log under any name, or a file ``read_queries`` reads."""
    path = Path(path).expanduser()
    if not path.is_file() or QueryFormat.from_path(path) is not None:
        return read_queries(path)  # it says what is wrong with a missing path
    collector = QueryCollector(path, SupervisionReport())
    for number, data in json_objects(path):  # the log's JSONL ({"ts", "query", "mode"})
        collector.add(record_id(path, number, data), record_text(path, number, data), line_label(number))
    return collector.finish()


def stored_pool(state: IndexState, encoder: Encoder) -> CandidatePool:
    """The index's live chunks as a teacher's candidate pool, with their stored vectors dequantised."""
    manifest, root = state.manifest, state.root
    if manifest.dimension != manifest.model_dimension:
        raise InputError(root, f"stores only the first {manifest.dimension} of the model's "
                         f"{manifest.model_dimension} dimensions; query-side adaptation trains against full "
                         "vectors", hint="adapt an index built without --dim")
    ids, texts, doc_ids, blocks = [], [], [], []
    for offset, segment in state.store.offsets():
        live = np.flatnonzero(~state.deleted[offset:offset + segment.rows])
        if not len(live):
            continue
        blocks.append(segment.dequantized(0, segment.rows)[live])
        for local in live.tolist():
            chunk = segment.chunks[local]
            ids.append(chunk["id"])
            doc_ids.append(chunk["doc_id"])
            texts.append(document_text(chunk.get("title", ""), chunk["text"]))
    if not ids:
        raise InputError(root, "holds no document vectors (no live chunks) to adapt to",
                         hint="add documents with Index.add or build the index again")
    return CandidatePool.build(ids, texts, doc_ids, np.concatenate(blocks), encoder)


def agreement(encoder: Encoder, scored: Sequence[ScoredQuery], document_vectors: Mapping[str, np.ndarray],
              config: QuerySideConfig) -> float:
    """Minus the mean listwise divergence from the teacher over each dev query's candidates (higher is better).

    The build's gate measures the same (fieldtune.gate.run_teacher_gate): agreement with the teacher's
    top ten over the whole index ranked an adapted SciFact model below its base while its real nDCG@10 rose.
    """
    queries = encoder.encode([s.text for s in scored], kind="query")
    return -float(np.mean([
        teacher_divergence(queries[i], item, document_vectors, config.teacher_temperature, config.student_temperature)
        for i, item in enumerate(scored)
    ]))


def adapt_index(index_dir: Path, queries_path: Path, options: AdaptOptions = AdaptOptions()) -> AdaptResult:
    """Train a query encoder for the index at ``index_dir`` and swap it in if it does better (module docstring)."""
    started = time.monotonic()
    root = Path(index_dir).expanduser()
    state = load_current(root)
    manifest = state.manifest
    config = QuerySideConfig(base=manifest.model.load_spec, budget_minutes=options.budget_minutes,
                             seed=options.seed, **dict(options.overrides))
    queries = read_adapt_queries(queries_path)
    if len(queries) < MIN_QUERIES:
        raise InputError(queries_path, f"holds only {len(queries)} distinct query; adapting needs at least "
                         f"{MIN_QUERIES} (some are held out to judge the result)")
    base = Encoder(manifest.model.load_spec, precision=manifest.precision, use_cache=False, show_progress=False)
    pool = stored_pool(state, base)
    train, dev = split_dev(queries, options.dev_fraction, seed=options.seed)
    teacher = make_teacher()
    train_scored, dev_scored = (teacher.score(group, pool, k=options.teacher_k) for group in (train, dev))
    logger.info("adapting %s: %d training and %d dev queries over %d chunks", root, len(train), len(dev), len(pool))
    model_dir = next_model_dir(root)
    vectors = dict(zip(pool.ids, pool.vectors, strict=True))
    trained = train_query_side(train_scored, vectors, model_dir=model_dir, config=config, dev_examples=dev_scored,
                               progress=False)
    current = agreement(query_encoder(root, manifest), dev_scored, vectors, config)
    adapted_encoder = Encoder(str(model_dir), precision=manifest.precision, use_cache=False, show_progress=False)
    adapted = agreement(adapted_encoder, dev_scored, vectors, config)
    swapped = adapted > current
    relative = model_dir.relative_to(root).as_posix()
    if swapped:
        swap_in(root, model_dir, index_document_fingerprint(manifest))
        reason = f"the adapted query encoder agrees better with the teacher on dev ({adapted:.4f} > {current:.4f})"
    else:
        if not options.keep_rejected:
            shutil.rmtree(model_dir, ignore_errors=True)
        reason = (f"the adapted query encoder does not beat the current one on dev ({adapted:.4f} <= {current:.4f}); "
                  "the current one is kept")
    kept = swapped or options.keep_rejected
    result = AdaptResult(swapped, reason, round(current, 6), round(adapted, 6), len(train), len(dev), trained.steps,
                         round(time.monotonic() - started, 1), relative if kept else None)
    _record(root, {"action": "adapt", "queries": str(queries_path), **result.to_dict()})
    return result


def rollback_index(index_dir: Path) -> IndexManifest:
    """Point the index back at its previous query encoder (atomic); nothing earlier raises an error naming it."""
    root = Path(index_dir).expanduser()
    manifest = roll_back(root)
    pointer = manifest.query_model.path if manifest.query_model else None
    _record(root, {"action": "rollback", "model": pointer})
    return manifest


def _record(root: Path, entry: Mapping[str, Any]) -> None:
    """Append one run to ``<index>/adapt.jsonl`` (the index's history of query encoders)."""
    with open(root / ADAPT_LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **entry}, ensure_ascii=False) + "\n")
