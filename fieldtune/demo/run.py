"""``fieldtune demo``: the whole pipeline on SymPy's docstrings, offline, built twice.

The task comes from the docstrings' own structure: a docstring's one-line
summary is the query and the rest of that docstring is the relevant
document. Nobody on this project wrote it, and it is on every machine that
has torch (SymPy is one of torch's dependencies). The summaries are split in
two halves, seeded: one half is the evaluation (never read by a build); the
other half plays the user's own queries (a search log). Two builds then run:

1. from the corpus alone: pseudo-queries from the concept graph (concept
   names and descriptions) and inverse-cloze sentences, scored by the hybrid
   teacher, adapt the query encoder; the gate demands a significant gain on
   the derived dev queries before it installs anything but the base;
2. with the user's queries: the same, on the queries a user would type,

and both are printed against the base model and BM25 on the held-out half.
Both fit a 2-core CPU with another process busy (``make demo`` is the first
command of the README, measured in benchmarks/results/demo_time.md): query-side
steps are cheap, the documents keep the base's embeddings (encoded once, by
the first build's teacher; the second build finds them in the cache), and the
full-model training of ``fieldtune build --mode full``, which re-encodes the
corpus for each candidate, is left out of the demo.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from fieldtune.demo.sympy_docs import EVAL_SET_NAME, sympy_eval_set, sympy_version, write_beir
from fieldtune.evaluate.beir import EvalSet

DEFAULT_LIMIT = 600
DEFAULT_BUDGET_MINUTES = 1.5
#: Pseudo-query sources of the corpus-only build (SymPy's docstrings have no titles).
CORPUS_ONLY_QUERIES = ("concepts", "sentences")
USER_QUERIES_FILE = "user-queries.txt"


def split_queries(eval_set: EvalSet, seed: int) -> tuple[EvalSet, list[str]]:
    """The held-out half (an EvalSet on the whole corpus) and the other half's query texts (the user's log)."""
    ids = sorted(eval_set.qrels)
    random.Random(seed).shuffle(ids)
    held, given = sorted(ids[: len(ids) // 2]), sorted(ids[len(ids) // 2 :])
    held_out = EvalSet(name=eval_set.name, corpus=eval_set.corpus,
                       queries={q: eval_set.queries[q] for q in held}, qrels={q: eval_set.qrels[q] for q in held})
    return held_out, [eval_set.queries[q] for q in given]


def run_demo(
    out: str | Path, *, limit: int | None = DEFAULT_LIMIT, budget_minutes: float = DEFAULT_BUDGET_MINUTES,
    precision: str | None = None, seed: int = 0, train: bool = True,
) -> str:
    """Write the demo set, build from the corpus alone and with half the summaries as queries, compare both.

    With ``train=False`` only ingestion and the base-vs-BM25 table run (quick).
    """
    from fieldtune.build import run_build
    from fieldtune.config import BuildConfig
    from fieldtune.encoding import Precision
    from fieldtune.evaluate.harness import EvalOptions, run_evaluation
    from fieldtune.evaluate.report import to_markdown

    out = Path(out)
    started = time.time()
    held_out, user_queries = split_queries(sympy_eval_set(limit=limit, seed=seed), seed)
    data_dir = write_beir(held_out, out / EVAL_SET_NAME)
    queries_file = out / USER_QUERIES_FILE
    queries_file.write_text("".join(f"{query}\n" for query in user_queries), encoding="utf-8")
    title = f"fieldtune demo: SymPy {sympy_version()} docstrings (summary -> rest of docstring)"
    chosen = Precision(precision) if precision else None
    if not train:
        stages = run_build(data_dir, out / "work", BuildConfig(min_documents=1), until="chunk").stages
        options = EvalOptions(precision=chosen or Precision.FP32, seed=seed)
        result = run_evaluation("minilm", data_dir, ["bm25"], options, data=held_out)
        result.write(out / "eval.json")
        stats = stages[-1].record["stats"]
        return (to_markdown(result, title=title)
                + f"\nIngested {stats['documents']:,} documents into {stats['chunks']:,} "
                f"chunks in {out / 'work'}; {time.time() - started:.0f}s in all.\n")
    common = {"budget_minutes": budget_minutes, "seed": seed, "eval_data": (str(data_dir),), "precision": chosen}
    corpus_only = run_build(data_dir, out / "work", BuildConfig(**common, pseudo_queries=CORPUS_ONLY_QUERIES))
    first = time.time() - started
    with_queries = run_build(data_dir, out / "work-queries", BuildConfig(**common, queries=str(queries_file)))
    second = time.time() - started - first
    held = f"the held-out half of the summaries ({len(held_out.qrels):,} queries)"
    return (
        to_markdown(corpus_only.evaluations[data_dir.name],
                    title=f"{title}. Build 1, from the corpus alone (pseudo-queries from the concept graph and "
                    f"its sentences): tuned vs base vs BM25 on {held}")
        + "\n" + to_markdown(with_queries.evaluations[data_dir.name],
                             title=f"Build 2, with the other {len(user_queries):,} summaries as the user's queries "
                             f"(query encoder adapted; documents keep the base's embeddings): on {held}")
        + f"\nBuild 1: model and card in {corpus_only.model_dir} ({first:.0f}s). Build 2: {with_queries.model_dir} "
        f"({second:.0f}s). {time.time() - started:.0f}s in all (training budget {budget_minutes:g} min each). "
        "No build read the held-out summaries; build 2 read the other half as its queries "
        f"({queries_file}).\n"
    )
