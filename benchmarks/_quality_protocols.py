"""The three protocols of ``benchmarks/quality.py``: what each build sees, and per-query scores pooled over folds.

- ``corpus``: the build sees ``corpus.jsonl`` only.
- ``unlabelled``: the build also gets query texts (``BuildConfig.queries``). A set
  with ``qrels/train.tsv`` (SciFact) gives its BEIR directory, of which the build
  reads only the train-judged queries; any other set is run in two folds: its
  judged test queries are split in halves (seeded), one half's texts go to the
  build as a ``.txt`` file and the model is scored on the other half only, then
  the halves swap. Per-query scores of both folds are pooled, so every test query
  is scored once, by a model that never saw its text.
- ``labelled``: the build gets ``train_data=<BEIR dir>`` (``qrels/train.tsv``);
  only sets that have train judgements take part.

Everything goes through the product (``run_build``, ``fieldtune.evaluate``'s
systems, a ``fieldtune.search.Index`` for hybrid search); nothing is
reimplemented here.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.build import BuildConfig, run_build
from fieldtune.evaluate.beir import load_beir
from fieldtune.evaluate.bootstrap import paired_bootstrap
from fieldtune.evaluate.harness import EvalOptions, run_evaluation
from fieldtune.evaluate.metrics import PRIMARY_METRIC, per_query_scores
from fieldtune.evaluate.systems import BM25System, DenseSystem
from fieldtune.hashing import path_sha256
from fieldtune.model_record import GateRecord
from fieldtune.search import Index, IndexNotFoundError
from fieldtune.types import EvalSet
from fieldtune.workdir import write_json

PROTOCOLS = ("corpus", "unlabelled", "labelled")
SMOKE_SETS = {"pubmedqa"}
TRAIN_QRELS = Path("qrels") / "train.tsv"
#: the systems every protocol reports (dense at each dimension is keyed ``tuned@384``, ``base@128``, ...)
HYBRID, BASE_HYBRID, BM25 = "tuned hybrid", "base hybrid", "bm25"
STAGES = ("ingest", "chunk", "concepts", "pairs", "queries", "teacher", "adapt", "mine", "train", "gate", "eval",
          "card")


@dataclass(frozen=True)
class Fold:
    """One build and the test queries its model is scored on."""

    name: str
    root: Path
    config: BuildConfig
    #: BEIR directory whose test split is scored (the set itself, or a half written for a 2-fold run)
    eval_dir: Path

    @property
    def build_dir(self) -> Path:
        return self.root / "build"


def has_train_qrels(data_dir: Path) -> bool:
    return (data_dir / TRAIN_QRELS).is_file()


def test_halves(data: EvalSet, seed: int) -> tuple[list[str], list[str]]:
    """The judged test queries (with text) shuffled with ``seed`` and cut in two halves."""
    ids = [q for q in data.judged_query_ids if data.queries[q].strip()]
    random.Random(seed).shuffle(ids)
    return sorted(ids[: len(ids) // 2]), sorted(ids[len(ids) // 2:])


def write_query_file(data: EvalSet, ids: list[str], path: Path) -> Path:
    """The texts of ``ids`` as a ``.txt`` queries file, one per line (inner line breaks become spaces)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(data.queries[q].split()) + "\n" for q in ids), encoding="utf-8")
    return path


def write_half_set(data_dir: Path, data: EvalSet, ids: list[str], out: Path) -> Path:
    """A BEIR directory scoring only ``ids``: the set's corpus (linked), those queries and their test qrels."""
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus.jsonl"
    if not corpus.exists():
        try:
            corpus.symlink_to((data_dir / "corpus.jsonl").resolve())
        except OSError:
            shutil.copyfile(data_dir / "corpus.jsonl", corpus)
    (out / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": data.queries[q]}) + "\n" for q in ids), encoding="utf-8")
    rows = [f"{q}\t{d}\t{r}\n" for q in ids for d, r in data.qrels[q].items()]
    (out / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(rows), encoding="utf-8")
    return out


def plan_folds(protocol: str, data_dir: Path, work: Path, config: BuildConfig) -> list[Fold]:
    """The builds of ``protocol`` on one set (empty: the protocol does not apply to the set)."""
    if protocol == "corpus":  # the layout of earlier runs, so their builds are reused
        return [Fold("all", work, config, data_dir)]
    if protocol == "labelled":
        if not has_train_qrels(data_dir):
            return []
        return [Fold("all", work / "labelled", replace(config, train_data=str(data_dir)), data_dir)]
    if has_train_qrels(data_dir):
        return [Fold("all", work / "unlabelled", replace(config, queries=str(data_dir)), data_dir)]
    data = load_beir(data_dir, "test")
    halves = test_halves(data, config.seed)
    folds = []
    for number, (train, scored) in enumerate((halves, halves[::-1])):
        root = work / "unlabelled" / f"fold{number}"
        queries = write_query_file(data, train, root / "queries.txt")
        eval_dir = write_half_set(data_dir, data, scored, root / "eval-set")
        folds.append(Fold(f"fold{number}", root, replace(config, queries=str(queries)), eval_dir))
    return folds


def hybrid_per_query(index: Index, data: EvalSet, ids: list[str]) -> np.ndarray:
    """nDCG@10 of ``search``'s hybrid mode over an index of the corpus, per query."""
    batch = index.search_batch([data.queries[q] for q in ids], k=10, mode="hybrid")
    run = {qid: {r.doc_id: float(len(results) - r.rank + 1) for r in results}
           for qid, results in zip(ids, batch, strict=True)}
    return per_query_scores(data.qrels, run, ids, (PRIMARY_METRIC,))[PRIMARY_METRIC.key]


def open_index(corpus: Path, index_dir: Path, model: str) -> Index:
    """The index of ``corpus`` with ``model`` in ``index_dir``, rebuilt when the model's files changed."""
    stamp = index_dir.with_name(index_dir.name + ".model-sha256")
    records = [Path(model) / name for name in ("README.md", "gate.json")]  # the card and gate rewrite these
    digest = path_sha256(model, exclude=records) if Path(model).is_dir() else model
    if stamp.is_file() and stamp.read_text().strip() == digest:
        try:
            return Index.open(index_dir)
        except IndexNotFoundError:
            pass
    shutil.rmtree(index_dir, ignore_errors=True)
    index = Index.build(corpus, index_dir, model=model, progress=False)
    stamp.write_text(digest + "\n")
    return index


def dense_per_query(name: str, model: str, data: EvalSet, ids: list[str], clip: bool) -> dict[str, np.ndarray]:
    system = DenseSystem(name=name, model_spec=model, clip_dims=clip)
    return {f"{name}@{dim}": per_query_scores(data.qrels, run, ids, (PRIMARY_METRIC,))[PRIMARY_METRIC.key]
            for dim, run in system.runs(data, ids).items()}


def run_fold(fold: Fold, data_dir: Path, base_index: Path) -> dict[str, Any]:
    """Build (or reuse) the fold's model, then score it and the baselines on the fold's test queries."""
    started = time.time()
    build = run_build(data_dir / "corpus.jsonl", fold.build_dir, fold.config)
    build_seconds = round(time.time() - started, 1)
    manifest = json.loads((fold.build_dir / "manifest.json").read_text())["stages"]
    gate = GateRecord.read(build.model_dir)
    data = load_beir(fold.eval_dir, "test")
    ids = [q for q in data.judged_query_ids if data.queries[q].strip()]
    model = str(build.model_dir)
    scores = dense_per_query("tuned", model, data, ids, clip=False)
    scores |= dense_per_query("base", fold.config.base, data, ids, clip=True)
    scores[BM25] = per_query_scores(data.qrels, BM25System().runs(data, ids)["full"], ids,
                                    (PRIMARY_METRIC,))[PRIMARY_METRIC.key]
    corpus = data_dir / "corpus.jsonl"
    scores[BASE_HYBRID] = hybrid_per_query(open_index(corpus, base_index, fold.config.base), data, ids)
    scores[HYBRID] = hybrid_per_query(open_index(corpus, fold.root / "index", model), data, ids)
    result = {
        "fold": fold.name, "queries": ids, "scores": {k: [round(float(x), 6) for x in v] for k, v in scores.items()},
        # the manifest keeps each stage's time from the run that built it, so a reused build still reports it
        "stage_seconds": {stage: record.get("seconds") for stage, record in manifest.items()},
        "build_seconds": round(sum(record.get("seconds") or 0.0 for record in manifest.values()), 1),
        "wall_seconds": build_seconds, "skipped": [r.name for r in build.stages if r.skipped],
        "stage_stats": {stage: manifest.get(stage, {}).get("stats") for stage in ("queries", "teacher", "adapt")},
        "gate": gate.chosen if gate else None, "config": {"queries": fold.config.queries,
                                                          "train_data": fold.config.train_data,
                                                          "mode": fold.config.training_mode().value},
    }
    # the product's own report on the same queries (``fieldtune eval --baseline base --baseline bm25 --json``)
    result["evaluation"] = run_evaluation(model, fold.eval_dir, ["base", "bm25"], EvalOptions(seed=fold.config.seed),
                                          data=data).to_dict()
    write_json(fold.root / "quality-scores.json", result)  # for a look at one fold without the whole report
    return result


def pooled_summary(folds: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    """Means and tuned-minus-base paired bootstrap CIs over the pooled queries of every fold."""
    keys = [k for k in folds[0]["scores"] if all(k in f["scores"] for f in folds)]
    pooled = {k: np.concatenate([np.asarray(f["scores"][k]) for f in folds]) for k in keys}
    dims = sorted({int(k.split("@")[1]) for k in keys if k.startswith("tuned@")}, reverse=True)
    full = dims[0]

    def diff(a: str, b: str) -> dict[str, float]:
        return paired_bootstrap(pooled[a], pooled[b], n_resamples=10_000, seed=seed).to_dict()

    tuned_full = float(pooled[f"tuned@{full}"].mean())
    stage_seconds: dict[str, float] = {}
    for fold in folds:
        for stage, seconds in fold["stage_seconds"].items():
            stage_seconds[stage] = round(stage_seconds.get(stage, 0.0) + (seconds or 0.0), 1)
    return {
        "queries": int(len(pooled[BM25])), "folds": len(folds),
        "means": {k: round(float(v.mean()), 4) for k, v in pooled.items()},
        "dims": dims, "full_dim": full,
        "dense_gain": diff(f"tuned@{full}", f"base@{full}"),
        "dense_gain_by_dim": {d: diff(f"tuned@{d}", f"base@{d}") for d in dims if f"base@{d}" in pooled},
        "hybrid_gain": diff(HYBRID, BASE_HYBRID),
        "share_128": float(pooled["tuned@128"].mean()) / tuned_full if "tuned@128" in pooled and tuned_full else None,
        "stage_seconds": stage_seconds, "build_seconds": round(sum(f["build_seconds"] for f in folds), 1),
        "max_build_seconds": max(f["build_seconds"] for f in folds),
        "gate": "/".join(str(f["gate"]) for f in folds),
    }


def _significant_gain(summary: dict[str, Any], key: str, at_least: float) -> bool:
    gain = summary[key]
    return gain["delta"] >= at_least and gain["ci_low"] > 0


def targets(protocol: str, summaries: dict[str, dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Issue 14's acceptance targets for ``protocol``: (target, met, the numbers behind it)."""
    judged = {n: s for n, s in summaries.items() if n not in SMOKE_SETS}
    if not judged:
        return []

    def numbers(key: str, names: list[str] | None = None) -> str:
        return ", ".join(f"{n} {judged[n][key]['delta']:+.4f} [{judged[n][key]['ci_low']:+.4f}, "
                         f"{judged[n][key]['ci_high']:+.4f}]" for n in (names or judged) if n in judged)

    checks: list[tuple[str, bool, str]] = []
    others = [n for n in ("cisi", "cacm", "arxiv_math_t2a") if n in judged]
    if protocol == "unlabelled":
        if "scifact" in judged:
            checks.append(("SciFact: tuned dense ≥ base + 0.05 with CI above zero",
                           _significant_gain(judged["scifact"], "dense_gain", 0.05),
                           numbers("dense_gain", ["scifact"])))
        won = [n for n in others if _significant_gain(judged[n], "dense_gain", 0.02)]
        checks.append((f"tuned dense ≥ base + 0.02 with CI above zero on ≥ 2 of {', '.join(others)} (2-fold)",
                       len(won) >= 2, f"{len(won)} of {len(others)}: {numbers('dense_gain', others)}"))
        checks.append(("tuned hybrid never below base hybrid by more than 0.005",
                       all(s["hybrid_gain"]["delta"] >= -0.005 for s in judged.values()), numbers("hybrid_gain")))
    elif protocol == "labelled" and "scifact" in judged:
        checks.append(("SciFact: tuned dense ≥ base + 0.10 with CI above zero",
                       _significant_gain(judged["scifact"], "dense_gain", 0.10), numbers("dense_gain", ["scifact"])))
        checks.append(("SciFact: tuned hybrid ≥ base hybrid + 0.02", judged["scifact"]["hybrid_gain"]["delta"] >= 0.02,
                       numbers("hybrid_gain", ["scifact"])))
    elif protocol == "corpus":
        checks.append(("no set below base by more than 0.005, dense and hybrid",
                       all(s[k]["delta"] >= -0.005 for s in judged.values() for k in ("dense_gain", "hybrid_gain")),
                       f"dense: {numbers('dense_gain')}; hybrid: {numbers('hybrid_gain')}"))
        won = [n for n, s in judged.items() if _significant_gain(s, "dense_gain", 0.01)]
        checks.append(("≥ 3 of the 4 sets gain ≥ 0.01 (dense) with CI above zero", len(won) >= 3,
                       f"{len(won)} of {len(judged)}: {', '.join(won) or 'none'}"))
    shares = {n: s["share_128"] for n, s in judged.items()}
    checks.append(("tuned @128 keeps ≥ 97% of its full-dimension nDCG@10 on every set",
                   all((v or 0) >= 0.97 for v in shares.values()),
                   ", ".join(f"{n} {v:.1%}" if v is not None else f"{n} -" for n, v in shares.items())))
    if protocol in ("unlabelled", "labelled") and "scifact" in judged:
        seconds = judged["scifact"]["max_build_seconds"]
        checks.append(("a query-side build on SciFact finishes within 15 min wall", seconds <= 900,
                       f"{seconds / 60:.1f} min"))
    return checks
