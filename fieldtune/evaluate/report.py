"""Markdown tables for an evaluation result, in the style of the reference model cards.

The HTML report, with plots, is :mod:`fieldtune.evaluate.html_report`; it reuses
:func:`sections` and :func:`preamble` so both say the same thing.
"""

from __future__ import annotations

from fieldtune.evaluate.metrics import DEFAULT_METRICS, PRIMARY_METRIC
from fieldtune.evaluate.result import EvaluationResult

_LABELS = {
    "ndcg@10": "nDCG@10", "mrr@10": "MRR@10", "recall@10": "Recall@10", "recall@100": "Recall@100",
    "hit@1": "Hit@1", "hit@3": "Hit@3", "hit@5": "Hit@5", "map": "MAP",
}


def _label(key: str) -> str:
    return _LABELS.get(key, key)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table as lines (header, rule, rows)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _dim_label(dim: str) -> str:
    return "-" if dim == "full" else dim


def summary_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """One row per system at its full dimension: every metric."""
    header = ["System", "Dim", *(_label(m.key) for m in DEFAULT_METRICS)]
    rows = []
    for name, system in result.systems.items():
        label = f"**{name}** (under test)" if name == result.model else name
        rows.append([label, _dim_label(system.full_dim), *(f"{system.score(m):.4f}" for m in DEFAULT_METRICS)])
    return header, rows


def dimension_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """nDCG@10 per Matryoshka dimension, one column per dense system."""
    key = PRIMARY_METRIC.key
    dense = {n: s for n, s in result.systems.items() if s.kind == "dense"}
    header = ["Dim", *(f"{n} {_label(key)}" for n in dense)]
    rows = []
    for dim in result.system().dims:
        row = [dim]
        for system in dense.values():
            row.append(f"{system.score(key, dim):.4f}" if dim in system.results else "-")
        rows.append(row)
    return header, rows


def _p_value(p: float, resamples: int) -> str:
    # A bootstrap p of 0 only says "below the resolution of the resampling".
    return f"<{1 / resamples:.0e}" if p == 0 else f"{p:.4f}"


def comparison_rows(result: EvaluationResult) -> tuple[list[str], list[list[str]]]:
    """One row per paired-bootstrap comparison of the model under test with a baseline."""
    header = ["System", "Model dim", "System dim", f"Δ {_label(PRIMARY_METRIC.key)} (model − system)", "95% CI", "p",
              "Queries"]
    rows = []
    for comp in result.comparisons:
        d = comp.model_minus_system
        mark = " *" if d.significant else ""
        rows.append([
            comp.system, comp.model_dim, _dim_label(comp.system_dim), f"{d.delta:+.4f}{mark}",
            f"[{d.ci_low:+.4f}, {d.ci_high:+.4f}]", _p_value(d.p_value, d.n_resamples), str(d.n_queries),
        ])
    return header, rows


def _summary_heading(result: EvaluationResult) -> str:
    """Say "full dimension" only when it is: ``--dims 7`` evaluates 7 of 384 dimensions."""
    system = result.system()
    if system.dimension is None or system.full_dim == str(system.dimension):
        return "Results at full dimension"
    return f"Results at dimension {system.full_dim} (the largest evaluated; the model has {system.dimension})"


def sections(result: EvaluationResult) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    """The report's tables in reading order: (heading, (header, rows))."""
    parts = [(_summary_heading(result), summary_rows(result)),
             ("nDCG@10 per Matryoshka dimension", dimension_rows(result))]
    if result.comparisons:
        parts.append(("Paired bootstrap differences (* = 95% CI excludes zero)", comparison_rows(result)))
    return parts


def preamble(result: EvaluationResult) -> str:
    """What was measured and how, in one paragraph: the set's sizes, the metric library, the bootstrap."""
    counts = result.counts
    settings = result.settings
    return (
        f"Dataset `{result.dataset.name}` (split `{result.dataset.split}`): "
        f"{counts.documents:,} documents, {counts.judged_queries:,} judged queries "
        f"({counts.judgements:,} judgements). Metrics by ir-measures (pytrec_eval); nDCG uses graded relevance; "
        f"a query's own id never counts as a hit. CIs: paired bootstrap over queries, "
        f"{settings.bootstrap_resamples:,} resamples, seed {settings.seed}. Precision {settings.precision}."
    )


def to_markdown(result: EvaluationResult, title: str | None = None) -> str:
    """The report as Markdown: a preamble saying what was measured, then the tables and any notes."""
    heading = title or f"Retrieval evaluation: {result.model} on {result.dataset.name}"
    lines = [f"# {heading}", "", preamble(result), ""]
    for section, (header, rows) in sections(result):
        lines += [f"## {section}", "", *markdown_table(header, rows), ""]
    for note in result.notes:
        lines.append(f"- Note: {note}")
    return "\n".join(lines).rstrip() + "\n"


def terminal_table(result: EvaluationResult) -> str:
    """The Markdown tables, which read well in a terminal too."""
    return to_markdown(result)
