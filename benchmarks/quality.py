"""Does a build beat its base on data nobody here wrote? Build on each set's corpus alone, then evaluate.

For every BEIR set in ``../shared/data`` with qrels (scifact, cisi, cacm,
arxiv_math_t2a; pubmedqa as a smoke test), this runs ``fieldtune build`` on
``corpus.jsonl`` only (never its queries or judgements) with the default base
and a stated budget, then scores on the set's test queries:

- tuned vs base vs BM25, nDCG@10 at every Matryoshka dimension, with paired
  bootstrap 95% CIs (``fieldtune eval --baseline base --baseline bm25``);
- search with the tuned model (a ``fieldtune index`` of the corpus): dense,
  BM25 and hybrid over documents, and hybrid minus the better of the other two
  with its CI.

Writes ``benchmarks/results/quality.{json,md}`` and ``quality.png``
(nDCG@10 against dimension, base and tuned, one panel per set), with the
hardware, budget, seed and wall time per build stage.

    python benchmarks/quality.py [--sets scifact,cisi] [--budget-minutes 10] [--seed 0] [--work /tmp/quality]

A set whose build already finished in ``--work`` is reused (the build skips
unchanged stages), so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, beir_sets_with_qrels, hardware, hardware_line  # noqa: E402

from fieldtune.build import BuildConfig, run_build  # noqa: E402
from fieldtune.evaluate.beir import load_beir  # noqa: E402
from fieldtune.evaluate.bootstrap import paired_bootstrap  # noqa: E402
from fieldtune.evaluate.harness import EvalOptions, run_evaluation  # noqa: E402
from fieldtune.evaluate.metrics import PRIMARY_METRIC, parse_metric, per_query_scores  # noqa: E402
from fieldtune.evaluate.result import EvaluationResult  # noqa: E402
from fieldtune.model_record import GateRecord  # noqa: E402
from fieldtune.workdir import atomic_write, write_json  # noqa: E402

logger = logging.getLogger("quality")
#: Acceptance targets of the quality issue, checked and printed with the table.
TARGET_GAIN = 0.02
TARGET_MAX_LOSS = 0.01
TARGET_SHARE_128 = 0.97
SMOKE_SETS = {"pubmedqa"}


def search_modes(model_dir: Path, data_dir: Path, index_dir: Path) -> dict[str, Any]:
    """Per-query nDCG@10 of dense, BM25 and hybrid search over an index of the corpus built with the tuned model."""
    from fieldtune.search import Index, IndexNotFoundError

    try:
        index = Index.open(index_dir)
    except IndexNotFoundError:
        index = Index.build(data_dir / "corpus.jsonl", index_dir, model=str(model_dir), progress=False)
    data = load_beir(data_dir)
    ids = data.judged_query_ids
    metric = (parse_metric("ndcg@10"),)
    per_query = {}
    for mode in ("dense", "bm25", "hybrid"):
        batch = index.search_batch([data.queries[q] for q in ids], k=10, mode=mode)
        run = {qid: {r.doc_id: float(len(results) - r.rank + 1) for r in results}
               for qid, results in zip(ids, batch, strict=True)}
        per_query[mode] = per_query_scores(data.qrels, run, ids, metric)["ndcg@10"]
    best_other = "dense" if per_query["dense"].mean() >= per_query["bm25"].mean() else "bm25"
    diff = paired_bootstrap(per_query["hybrid"], per_query[best_other], n_resamples=10_000, seed=0)
    return {"ndcg@10": {mode: float(v.mean()) for mode, v in per_query.items()}, "best_other": best_other,
            "hybrid_minus_best_other": diff.to_dict(), "queries": len(ids)}


def one_set(data_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    name = data_dir.name
    work = args.work / name
    config = BuildConfig(budget_minutes=args.budget_minutes, seed=args.seed)
    started = time.time()
    build = run_build(data_dir / "corpus.jsonl", work / "build", config)
    build_seconds = time.time() - started
    manifest = json.loads((work / "build" / "manifest.json").read_text())["stages"]
    gate = GateRecord.read(build.model_dir)
    evaluation = run_evaluation(str(build.model_dir), data_dir, ["base", "bm25"], EvalOptions(seed=args.seed))
    search = search_modes(build.model_dir, data_dir, work / "index")
    return {
        "set": name, "build_seconds": round(build_seconds, 1),
        "stage_seconds": {stage: record.get("seconds") for stage, record in manifest.items()},
        "train": {k: manifest.get("train", {}).get("stats", {}).get(k)
                  for k in ("steps", "train_examples", "stopped_because", "seconds")},
        "gate": {"chosen": gate.chosen, "scores": dict(gate.scores)} if gate else {"chosen": None, "scores": None},
        "evaluation": evaluation.to_dict(), "search": search,
    }


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """The numbers the acceptance targets name, for one set."""
    evaluation = EvaluationResult.from_dict(result["evaluation"])
    key = PRIMARY_METRIC
    base_name = next(name for name in evaluation.baselines if evaluation.system(name).kind == "dense")
    tuned, base = evaluation.system(), evaluation.system(base_name)
    versus_base = {c.model_dim: c.model_minus_system.to_dict() for c in evaluation.comparisons if c.system == base_name}
    gain = versus_base[tuned.full_dim]
    full_score = tuned.score(key)
    search = result["search"]
    return {
        "tuned": {dim: tuned.score(key, dim) for dim in tuned.dims},
        "base": {dim: base.score(key, dim) for dim in base.dims},
        "bm25": evaluation.score(key, system="bm25"),
        "gain": gain, "gain_by_dim": versus_base,
        "meets_gain": gain["delta"] >= TARGET_GAIN and gain["ci_low"] > 0,
        "within_loss": gain["delta"] >= -TARGET_MAX_LOSS,
        "share_128": tuned.score(key, 128) / full_score if "128" in tuned.results and full_score else None,
        "hybrid_ok": search["ndcg@10"]["hybrid"] >= max(search["ndcg@10"]["dense"], search["ndcg@10"]["bm25"]),
    }


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(payload["sets"])
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        summary = payload["sets"][name]["summary"]
        for label, key, style in (("base", "base", "o--"), ("tuned", "tuned", "s-")):
            dims = sorted(summary[key], key=int)
            ax.plot([int(d) for d in dims], [summary[key][d] for d in dims], style, label=label)
        ax.axhline(summary["bm25"], color="grey", linewidth=0.8, linestyle=":", label="BM25")
        ax.set_title(name, fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dimension")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("nDCG@10")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt_ci(d: dict[str, float]) -> str:
    star = "*" if d["ci_low"] > 0 or d["ci_high"] < 0 else ""
    return f"{d['delta']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]{star}"


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# Quality: tuned vs base vs BM25 vs hybrid, building on each corpus alone",
        "",
        f"Hardware: {hardware_line(payload['hardware'])}. "
        f"Build budget {payload['budget_minutes']} min of training per set, "
        f"seed {payload['seed']}. Generated by `python benchmarks/quality.py {payload['argv']}` "
        f"in {payload['seconds'] / 60:.0f} min "
        f"(load average at start {payload['load_start']}, at end {payload['load_end']}).",
        "",
        "The build saw only `corpus.jsonl`; queries and judgements are the set's own test split. Δ is tuned minus base "
        "(paired bootstrap 95% CI over queries; * = CI excludes zero). "
        "The gate column is what the build's quality gate "
        "installed (trained, averaged with the base, or the base kept).",
        "",
        "| set | base | tuned | Δ vs base [95% CI] | BM25 | tuned @128 / full | gate | hybrid (dense / BM25) "
        "| hybrid − best other [CI] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in payload["sets"].items():
        s, search = entry["summary"], entry["result"]["search"]
        full = next(iter(s["tuned"]))
        share = f"{s['share_128']:.1%}" if s["share_128"] is not None else "-"
        modes = search["ndcg@10"]
        lines.append(
            f"| {name}{' (smoke)' if name in SMOKE_SETS else ''} | {s['base'][full]:.4f} | {s['tuned'][full]:.4f} | "
            f"{_fmt_ci(s['gain'])} | "
            f"{s['bm25']:.4f} | {share} | {entry['result']['gate'].get('chosen') or '-'} | "
            f"{modes['hybrid']:.4f} ({modes['dense']:.4f} / {modes['bm25']:.4f}) | "
            f"{_fmt_ci(search['hybrid_minus_best_other'])} |"
        )
    lines += ["", "Per dimension (nDCG@10, base → tuned, Δ [CI]):", "", "| set | " + " | ".join(payload["dims"]) + " |",
              "| --- |" + " --- |" * len(payload["dims"])]
    for name, entry in payload["sets"].items():
        s = entry["summary"]
        cells = [f"{s['base'].get(d, float('nan')):.4f} → {s['tuned'].get(d, float('nan')):.4f}, "
                 f"{_fmt_ci(s['gain_by_dim'][d])}"
                 if d in s["gain_by_dim"] else "-" for d in payload["dims"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Build wall time per stage (s):", "", "| set | " + " | ".join(payload["stages"]) + " | total |",
              "| --- |" + " --- |" * (len(payload["stages"]) + 1)]
    for name, entry in payload["sets"].items():
        seconds = entry["result"]["stage_seconds"]
        lines.append(f"| {name} | " + " | ".join(f"{seconds.get(st) or 0:.0f}" for st in payload["stages"])
                     + f" | {entry['result']['build_seconds']:.0f} |")
    checks = payload["targets"]
    lines += ["", "Targets (issue: quality and speed):", "",
              f"- tuned ≥ base + {TARGET_GAIN} with CI above zero on ≥ 3 of scifact, cisi, cacm, arxiv_math_t2a: "
              f"{checks['gain_sets']} of {checks['judged_sets']} → {'met' if checks['gain_met'] else 'NOT met'}",
              f"- no set below base by more than {TARGET_MAX_LOSS}: {'met' if checks['loss_met'] else 'NOT met'}",
              f"- tuned @128 keeps ≥ {TARGET_SHARE_128:.0%} of full on every set: "
              f"{'met' if checks['share_met'] else 'NOT met'}",
              f"- hybrid ≥ max(tuned dense, BM25) on every set: {'met' if checks['hybrid_met'] else 'NOT met'}",
              "", "![nDCG@10 against dimension](quality.png)", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", help="comma-separated set names (default: every set with qrels)")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "fieldtune-quality")
    parser.add_argument("--out", type=Path, default=RESULTS / "quality")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    sets = beir_sets_with_qrels()
    if args.sets:
        wanted = args.sets.split(",")
        sets = sorted((s for s in sets if s.name in wanted), key=lambda s: wanted.index(s.name))
    started, load_start = time.time(), [round(x, 2) for x in os.getloadavg()]
    payload: dict[str, Any] = {"hardware": hardware(), "budget_minutes": args.budget_minutes, "seed": args.seed,
                               "argv": " ".join(sys.argv[1:]), "sets": {}}
    for data_dir in sets:
        logger.info("=== %s: build on corpus.jsonl alone, then evaluate", data_dir.name)
        result = one_set(data_dir, args)
        payload["sets"][data_dir.name] = {"result": result, "summary": summarise(result)}
        logger.info("%s: %s", data_dir.name, json.dumps(payload["sets"][data_dir.name]["summary"]["gain"]))
        write_json(args.out.with_suffix(".partial.json"), payload)  # a crash later keeps what was measured
    summaries = {n: e["summary"] for n, e in payload["sets"].items() if n not in SMOKE_SETS}
    dims = {d for e in payload["sets"].values() for d in e["summary"]["tuned"]}
    payload["dims"] = sorted(dims, key=int, reverse=True)
    payload["stages"] = [st for st in ("ingest", "chunk", "concepts", "pairs", "mine", "train", "gate", "eval", "card")]
    gain_sets = sum(s["meets_gain"] for s in summaries.values())
    payload["targets"] = {
        "gain_sets": gain_sets, "gain_met": gain_sets >= 3, "judged_sets": len(summaries),
        "loss_met": all(s["within_loss"] for s in summaries.values()),
        "share_met": all((s["share_128"] or 0) >= TARGET_SHARE_128 for s in summaries.values()),
        "hybrid_met": all(e["summary"]["hybrid_ok"] for e in payload["sets"].values()),
    }
    payload["seconds"] = round(time.time() - started, 1)
    payload["load_start"], payload["load_end"] = load_start, [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out.with_suffix(".json"), payload)
    plot(payload, args.out.with_suffix(".png"))
    with atomic_write(args.out.with_suffix(".md")) as handle:
        handle.write(markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
