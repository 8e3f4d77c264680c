"""``fieldtune demo``: the whole pipeline on SymPy's docstrings, offline.

The task comes from the docstrings' own structure: a docstring's one-line
summary is the query and the rest of that docstring is the relevant
document. Nobody on this project wrote it, and it is on every machine that
has torch (SymPy is one of torch's dependencies). ``build`` reads only the
documents (the bodies); the summaries are used for evaluation alone.
"""

from __future__ import annotations

import time
from pathlib import Path

from fieldtune.demo.sympy_docs import EVAL_SET_NAME, sympy_eval_set, sympy_version, write_beir

DEFAULT_LIMIT = 800
DEFAULT_BUDGET_MINUTES = 2.0


def run_demo(
    out: str | Path, *, limit: int | None = DEFAULT_LIMIT, budget_minutes: float = DEFAULT_BUDGET_MINUTES,
    precision: str | None = None, seed: int = 0, train: bool = True,
) -> str:
    """Write the demo set, build a tuned model from its documents, and compare tuned vs base vs BM25.

    With ``train=False`` only ingestion and the base-vs-BM25 table run (quick).
    """
    from fieldtune.build import run_build
    from fieldtune.config import BuildConfig
    from fieldtune.encoding import Precision
    from fieldtune.evaluate.harness import EvalOptions, run_evaluation
    from fieldtune.evaluate.report import to_markdown

    out = Path(out)
    started = time.time()
    eval_set = sympy_eval_set(limit=limit, seed=seed)
    data_dir = write_beir(eval_set, out / EVAL_SET_NAME)
    title = f"fieldtune demo: SymPy {sympy_version()} docstrings (summary -> rest of docstring)"
    chosen = Precision(precision) if precision else None
    if not train:
        stages = run_build(data_dir, out / "work", BuildConfig(min_documents=1), until="chunk").stages
        options = EvalOptions(precision=chosen or Precision.FP32, seed=seed)
        result = run_evaluation("minilm", data_dir, ["bm25"], options, data=eval_set)
        result.write(out / "eval.json")
        stats = stages[-1].record["stats"]
        return (to_markdown(result, title=title)
                + f"\nIngested {stats['documents']:,} documents into {stats['chunks']:,} "
                f"chunks in {out / 'work'}; {time.time() - started:.0f}s in all.\n")
    config = BuildConfig(budget_minutes=budget_minutes, seed=seed, eval_data=(str(data_dir),), precision=chosen)
    result = run_build(data_dir, out / "work", config)
    external = result.evaluations[data_dir.name]
    derived = result.evaluations["derived"]
    return (
        to_markdown(external, title=f"{title}: tuned vs base vs BM25")
        + "\n" + to_markdown(derived, title="Derived test set (held-out concepts of the SymPy concept graph)")
        + f"\nModel and card: {result.model_dir}; {time.time() - started:.0f}s in all "
        f"(training budget {budget_minutes:g} min). The build read only the docstring bodies; "
        "the summaries were used for evaluation alone.\n"
    )
