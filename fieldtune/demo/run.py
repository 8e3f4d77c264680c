"""``fieldtune demo``: the whole available pipeline on SymPy's docstrings, offline.

The task comes from the docstrings' own structure: a docstring's one-line
summary is the query and the rest of that docstring is the relevant
document. Nobody on this project wrote it, and it is on every machine that
has torch (SymPy is one of torch's dependencies).
"""

from __future__ import annotations

import time
from pathlib import Path

from fieldtune.demo.sympy_docs import sympy_eval_set, sympy_version, write_beir


def run_demo(out: str | Path, *, limit: int | None = None, precision: str = "fp32", seed: int = 0) -> str:
    """Write the demo set, ingest and chunk it, then compare the base model with BM25."""
    from fieldtune.encoding import Precision
    from fieldtune.evaluate.harness import EvalOptions, run_evaluation
    from fieldtune.evaluate.report import to_markdown
    from fieldtune.pipeline import ingest_and_chunk
    from fieldtune.workdir import write_json

    out = Path(out)
    started = time.time()
    eval_set = sympy_eval_set(limit=limit, seed=seed)
    data_dir = write_beir(eval_set, out / "sympy-beir")
    stages = ingest_and_chunk(data_dir, out / "work")
    result = run_evaluation("minilm", data_dir, ["bm25"], EvalOptions(precision=Precision(precision)), data=eval_set)
    write_json(out / "eval.json", result)
    chunk_stats = stages[-1].record["stats"]
    title = f"fieldtune demo: SymPy {sympy_version()} docstrings (summary -> rest of docstring)"
    return (
        to_markdown(result, title=title)
        + f"\nIngested {chunk_stats['documents']:,} documents into {chunk_stats['chunks']:,} chunks in {out / 'work'}; "
        f"results in {out / 'eval.json'}; {time.time() - started:.0f}s in all.\n"
        "The tuned model joins this table when `fieldtune build` lands.\n"
    )
