"""Does a build beat its base on data nobody here wrote? Three protocols, each on every public set.

For every BEIR set in ``../shared/data`` with qrels (scifact, cisi, cacm,
arxiv_math_t2a; pubmedqa as a smoke test), ``run_build`` builds a model and it
is scored on the set's test queries (see ``_quality_protocols.py``):

- ``corpus``: the build sees ``corpus.jsonl`` only;
- ``unlabelled``: the build also gets query texts: SciFact's train-judged
  queries (its BEIR directory), or, on sets without train judgements, half of
  the test queries' texts with the model scored on the other half, then the
  halves swapped (2-fold, per-query scores pooled);
- ``labelled``: the build gets SciFact's train judgements (``qrels/train.tsv``).

Per set: nDCG@10 of the tuned model (dense, every Matryoshka dimension), the
base, BM25, and hybrid search (``fieldtune.search`` over an index of the corpus)
with the base and with the tuned model; tuned minus base with paired bootstrap
95% CIs over the (pooled) queries; the 128-dimension share; the build's wall
time per stage. Issue 14's acceptance targets are checked under each table.

Writes ``benchmarks/results/quality.{json,md}`` (a run of some protocols keeps
the others' entries already there) and ``quality_<protocol>.png``.

    python benchmarks/quality.py [--protocol corpus,unlabelled,labelled] [--sets scifact,cisi]
        [--budget-minutes 10] [--seed 0] [--work /tmp/fieldtune-quality]

A build already finished in ``--work`` is reused (the build skips unchanged
stages), so an interrupted run picks up where it stopped.
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
from _quality_protocols import (  # noqa: E402
    BASE_HYBRID,
    BM25,
    HYBRID,
    PROTOCOLS,
    SMOKE_SETS,
    STAGES,
    plan_folds,
    pooled_summary,
    run_fold,
    targets,
)

from fieldtune.build import BuildConfig  # noqa: E402
from fieldtune.workdir import atomic_write, write_json  # noqa: E402

logger = logging.getLogger("quality")

WHAT_THE_BUILD_SAW = {
    "corpus": "The build saw only `corpus.jsonl`.",
    "unlabelled": "The build saw `corpus.jsonl` and query texts, never judgements: SciFact's 809 train-judged "
                  "queries (`--queries <scifact dir>`); on the other sets half of the test queries' texts "
                  "(a `.txt` file), the model scored on the other half, then the halves swapped (2-fold; "
                  "the per-query scores of both folds are pooled).",
    "labelled": "The build saw `corpus.jsonl` and SciFact's train judgements (`--train-data <scifact dir>`).",
}


def run_protocol(protocol: str, sets: list[Path], args: argparse.Namespace) -> dict[str, Any]:
    config = BuildConfig(budget_minutes=args.budget_minutes, seed=args.seed, train_overrides=args.train_overrides,
                         query_side_overrides=args.query_side_overrides)
    entries: dict[str, Any] = {}
    for data_dir in sets:
        work = args.work / data_dir.name
        folds = plan_folds(protocol, data_dir, work, config)
        if not folds:
            logger.info("=== %s / %s: not applicable (no train judgements)", protocol, data_dir.name)
            continue
        logger.info("=== %s / %s: %d build(s)", protocol, data_dir.name, len(folds))
        results = [run_fold(fold, data_dir, work / "index-base") for fold in folds]
        entries[data_dir.name] = {"folds": results, "summary": pooled_summary(results, args.seed)}
        logger.info("%s / %s: dense %s", protocol, data_dir.name, json.dumps(entries[data_dir.name]["summary"]
                                                                             ["dense_gain"]))
    checks = targets(protocol, {n: e["summary"] for n, e in entries.items()})
    return {"sets": entries, "targets": [{"target": t, "met": met, "numbers": n} for t, met, n in checks]}


def _ci(d: dict[str, float]) -> str:
    star = "*" if d["ci_low"] > 0 or d["ci_high"] < 0 else ""
    return f"{d['delta']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]{star}"


def protocol_markdown(protocol: str, entry: dict[str, Any]) -> list[str]:
    lines = [f"## Protocol `{protocol}`", "", WHAT_THE_BUILD_SAW[protocol], "",
             "| set | queries (folds) | base dense | tuned dense | Δ dense [95% CI] | tuned @128 / full | BM25 "
             "| base hybrid | tuned hybrid | Δ hybrid [95% CI] | gate |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, item in entry["sets"].items():
        s = item["summary"]
        m, full = s["means"], s["full_dim"]
        share = f"{s['share_128']:.1%}" if s["share_128"] is not None else "-"
        lines.append(f"| {name}{' (smoke)' if name in SMOKE_SETS else ''} | {s['queries']} ({s['folds']}) "
                     f"| {m[f'base@{full}']:.4f} | {m[f'tuned@{full}']:.4f} | {_ci(s['dense_gain'])} | {share} "
                     f"| {m[BM25]:.4f} | {m[BASE_HYBRID]:.4f} | {m[HYBRID]:.4f} | {_ci(s['hybrid_gain'])} "
                     f"| {s['gate']} |")
    dims = sorted({d for item in entry["sets"].values() for d in item["summary"]["dims"]}, reverse=True)
    lines += ["", "Dense nDCG@10 per dimension (base → tuned, Δ [CI]):", "",
              "| set | " + " | ".join(map(str, dims)) + " |", "| --- |" + " --- |" * len(dims)]
    for name, item in entry["sets"].items():
        s, m = item["summary"], item["summary"]["means"]
        by_dim = {int(d): v for d, v in s["dense_gain_by_dim"].items()}
        cells = [f"{m[f'base@{d}']:.4f} → {m[f'tuned@{d}']:.4f}, {_ci(by_dim[d])}" if d in by_dim else "-"
                 for d in dims]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    stages = [st for st in STAGES if any(st in item["summary"]["stage_seconds"] for item in entry["sets"].values())]
    lines += ["", "Build wall time per stage (s; 2-fold sets: both builds added):", "",
              "| set | " + " | ".join(stages) + " | total |", "| --- |" + " --- |" * (len(stages) + 1)]
    for name, item in entry["sets"].items():
        seconds = item["summary"]["stage_seconds"]
        lines.append(f"| {name} | " + " | ".join(f"{seconds[st]:.0f}" if st in seconds else "-" for st in stages)
                     + f" | {item['summary']['build_seconds']:.0f} |")
    lines += ["", "Targets (issue 14):", ""]
    lines += [f"- {c['target']}: **{'met' if c['met'] else 'NOT met'}** ({c['numbers']})" for c in entry["targets"]]
    return [*lines, "", f"![nDCG@10 against dimension](quality_{protocol}.png)", ""]


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# Quality: tuned vs base vs BM25 vs hybrid, under three protocols",
        "",
        f"Hardware: {hardware_line(payload['hardware'])}. Build budget {payload['budget_minutes']} min of training "
        f"per build, seed {payload['seed']}. Generated by `python benchmarks/quality.py {payload['argv']}` "
        f"in {payload['seconds'] / 60:.0f} min (load average at start {payload['load_start']}, "
        f"at end {payload['load_end']}).",
        "",
        "Scores are nDCG@10 on the set's test queries. Δ is tuned minus base (dense at full dimension; hybrid: "
        "`search`'s hybrid mode over an index built with each model), paired bootstrap 95% CI over queries; "
        "* = CI excludes zero. The gate column is what the build's quality gate installed.",
        "",
    ]
    for protocol in PROTOCOLS:
        if protocol in payload["protocols"]:
            lines += protocol_markdown(protocol, payload["protocols"][protocol])
    return "\n".join(lines)


def plot(entry: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(entry["sets"])
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        summary = entry["sets"][name]["summary"]
        means, dims = summary["means"], summary["dims"]
        for label, style in (("base", "o--"), ("tuned", "s-")):
            shown = [d for d in dims if f"{label}@{d}" in means]
            ax.plot(shown, [means[f"{label}@{d}"] for d in shown], style, label=label)
        ax.axhline(means[BM25], color="grey", linewidth=0.8, linestyle=":", label="BM25")
        ax.set_title(name, fontsize=10)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dimension")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("nDCG@10")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default=",".join(PROTOCOLS), help="comma-separated: " + ", ".join(PROTOCOLS))
    parser.add_argument("--sets", help="comma-separated set names (default: every set with qrels)")
    parser.add_argument("--budget-minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "fieldtune-quality")
    parser.add_argument("--out", type=Path, default=RESULTS / "quality")
    parser.add_argument("--train-overrides", type=json.loads, default={}, help="JSON, e.g. '{\"max_steps\": 3}'")
    parser.add_argument("--query-side-overrides", type=json.loads, default={}, help="JSON, e.g. '{\"max_steps\": 3}'")
    args = parser.parse_args()
    protocols = args.protocol.split(",")
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        parser.error(f"unknown protocol {', '.join(unknown)}; choose from {', '.join(PROTOCOLS)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    sets = beir_sets_with_qrels()
    if args.sets:
        wanted = args.sets.split(",")
        sets = sorted((s for s in sets if s.name in wanted), key=lambda s: wanted.index(s.name))
    started, load_start = time.time(), [round(x, 2) for x in os.getloadavg()]
    previous = args.out.with_suffix(".json")
    kept = json.loads(previous.read_text()).get("protocols", {}) if previous.is_file() else {}
    payload: dict[str, Any] = {"hardware": hardware(), "budget_minutes": args.budget_minutes, "seed": args.seed,
                               "argv": " ".join(sys.argv[1:]), "protocols": dict(kept)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for protocol in protocols:
        payload["protocols"][protocol] = run_protocol(protocol, sets, args)
        write_json(args.out.with_suffix(".partial.json"), payload)  # a crash later keeps what was measured
        plot(payload["protocols"][protocol], args.out.with_name(f"{args.out.name}_{protocol}.png"))
    payload["seconds"] = round(time.time() - started, 1)
    payload["load_start"], payload["load_end"] = load_start, [round(x, 2) for x in os.getloadavg()]
    write_json(args.out.with_suffix(".json"), payload)
    with atomic_write(args.out.with_suffix(".md")) as handle:
        handle.write(markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
