"""``fieldtune eval``: score a model and its baselines on a BEIR set, with paired-bootstrap CIs."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldtune.encoding import Precision
from fieldtune.errors import InputError
from fieldtune.evaluate.beir import load_beir
from fieldtune.evaluate.bootstrap import paired_bootstrap
from fieldtune.evaluate.metrics import DEFAULT_METRICS, PRIMARY_METRIC, mean_scores, per_query_scores
from fieldtune.evaluate.per_query import PerQueryScores
from fieldtune.evaluate.result import Comparison, Counts, DatasetInfo, EvaluationResult, Settings, SystemResult
from fieldtune.evaluate.systems import BM25System, DenseSystem, System
from fieldtune.models import DEFAULT_MODEL, base_model_of, resolve_model
from fieldtune.types import EvalSet

logger = logging.getLogger("fieldtune.evaluate")

BASE = "base"
BM25 = "bm25"


@dataclass(frozen=True)
class EvalOptions:
    split: str = "test"
    dims: Sequence[int] | None = None
    precision: Precision = Precision.AUTO
    seed: int = 0
    n_resamples: int = 10_000
    use_cache: bool = True


def display_name(spec: str) -> str:
    """A short label: a registered name or hub id as given, a directory by its last parts."""
    path = Path(spec).expanduser()
    if not path.is_dir():
        return spec
    resolved = path.resolve()
    # `build` writes DIR/model: "DIR/model" says more than "model".
    return f"{resolved.parent.name}/{resolved.name}" if resolved.name == "model" else resolved.name


def _baseline_systems(model: str, baselines: Sequence[str], options: EvalOptions, notes: list[str]) -> list[System]:
    systems: list[System] = []
    model_location = resolve_model(model).location
    seen = {model_location}
    for spec in baselines:
        if spec == BM25:
            if BM25 not in {s.name for s in systems}:
                systems.append(BM25System())
            continue
        if spec == BASE:
            base = base_model_of(model)
            if base is None:
                base = DEFAULT_MODEL
                notes.append(f"{model} records no base model; 'base' means the default base, {DEFAULT_MODEL}")
            spec = base
        location = resolve_model(spec).location
        if location in seen:
            notes.append(f"baseline {spec} is the model under test (or listed twice); not evaluated twice")
            continue
        seen.add(location)
        systems.append(DenseSystem(
            name=display_name(spec), model_spec=spec, dims=list(options.dims) if options.dims else None,
            precision=options.precision, use_cache=options.use_cache, clip_dims=True,
        ))
    return systems


def _without_blank_queries(data: EvalSet, query_ids: list[str], source: Path, notes: list[str]) -> list[str]:
    """The judged queries that have text: a blank one would count as a miss and lower every metric in silence."""
    kept = [qid for qid in query_ids if data.queries[qid].strip()]
    blank = [qid for qid in query_ids if not data.queries[qid].strip()]
    if not kept:
        raise InputError(source, f"all {len(blank)} judged queries are blank", hint="give each query a text")
    if blank:
        shown = ", ".join(blank[:5]) + (" ..." if len(blank) > 5 else "")
        note = f"{len(blank)} of {len(query_ids)} judged queries are blank and were left out of every score: {shown}"
        notes.append(note)
        logger.warning("%s: %s", source, note)
    return kept


def run_evaluation(model: str, data_dir: str | Path, baselines: Sequence[str] = (), options: EvalOptions | None = None,
                   *, data: EvalSet | None = None) -> EvaluationResult:
    """Evaluate ``model`` and ``baselines`` on ``data_dir``; the result's ``to_dict()`` is the ``eval --json`` file."""
    options = options or EvalOptions()
    started = time.time()
    data = data or load_beir(data_dir, options.split)
    query_ids = data.judged_query_ids
    if not query_ids:
        raise InputError(data_dir, f"split {options.split!r} has no query with a relevant document")
    notes: list[str] = []
    query_ids = _without_blank_queries(data, query_ids, Path(data_dir) / "queries.jsonl", notes)
    model_name = display_name(model)
    under_test = DenseSystem(name=model_name, model_spec=model, dims=list(options.dims) if options.dims else None,
                             precision=options.precision, use_cache=options.use_cache)
    others = _baseline_systems(model, baselines, options, notes)

    systems: dict[str, SystemResult] = {}
    per_query: dict[str, dict[str, dict[str, Any]]] = {}
    timings: dict[str, float] = {}
    for system in [under_test, *others]:
        tick = time.time()
        if system is not under_test and isinstance(system, DenseSystem):
            system.precision = Precision(under_test.precision_used)  # every model compared at one precision
        runs = system.runs(data, query_ids)
        timings[system.name] = round(time.time() - tick, 2)
        per_query[system.name] = {dim: per_query_scores(data.qrels, run, query_ids, DEFAULT_METRICS)
                                  for dim, run in runs.items()}
        systems[system.name] = SystemResult(
            kind=system.kind,
            model=getattr(system, "model_spec", None),
            dimension=getattr(system, "dimension", None) or None,
            results={dim: mean_scores(scores) for dim, scores in per_query[system.name].items()},
        )
        logger.info("%s: %s", system.name, {d: round(systems[system.name].score(PRIMARY_METRIC, d), 4) for d in runs})

    comparisons = []
    key = PRIMARY_METRIC.key
    for system in others:
        theirs = per_query[system.name]
        for dim, mine in per_query[model_name].items():
            their_dim = dim if dim in theirs else systems[system.name].full_dim
            diff = paired_bootstrap(mine[key], theirs[their_dim][key], n_resamples=options.n_resamples,
                                    seed=options.seed)
            comparisons.append(Comparison(system=system.name, system_dim=their_dim, model_dim=dim, metric=key,
                                          model_minus_system=diff))
    return EvaluationResult(
        dataset=DatasetInfo(name=data.name, path=str(data_dir), split=options.split),
        counts=Counts(documents=len(data.corpus), queries=len(data.queries), judged_queries=len(query_ids),
                      judgements=sum(len(r) for r in data.qrels.values())),
        model=model_name,
        systems=systems,
        comparisons=tuple(comparisons),
        settings=Settings(
            metrics=tuple(m.key for m in DEFAULT_METRICS),
            precision=under_test.precision_used or options.precision.resolved().value,
            bootstrap_resamples=options.n_resamples, seed=options.seed, confidence=0.95,
            difference="model under test minus system, per query, mean over judged queries",
        ),
        notes=tuple(notes),
        seconds={"total": round(time.time() - started, 2), **timings},
        per_query=PerQueryScores.from_arrays(
            key, query_ids, [data.queries[qid] for qid in query_ids],
            {name: {dim: scores[key] for dim, scores in by_dim.items()} for name, by_dim in per_query.items()}),
    )
