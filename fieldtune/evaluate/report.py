"""Markdown (and HTML) tables for an evaluation result, in the style of the reference model cards."""

from __future__ import annotations

import html
from typing import Any

from fieldtune.evaluate.metrics import DEFAULT_METRICS, PRIMARY_METRIC

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


def _full_dim(system: dict[str, Any]) -> str:
    return next(iter(system["results"]))


def summary_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One row per system at its full dimension: every metric."""
    header = ["System", "Dim", *(_label(m.key) for m in DEFAULT_METRICS)]
    rows = []
    for name, system in result["systems"].items():
        dim = _full_dim(system)
        metrics = system["results"][dim]
        label = f"**{name}** (under test)" if name == result["model"] else name
        rows.append([label, _dim_label(dim), *(f"{metrics[m.key]:.4f}" for m in DEFAULT_METRICS)])
    return header, rows


def dimension_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """nDCG@10 per Matryoshka dimension, one column per dense system."""
    key = PRIMARY_METRIC.key
    dense = {n: s for n, s in result["systems"].items() if s["kind"] == "dense"}
    dims = list(result["systems"][result["model"]]["results"])
    header = ["Dim", *(f"{n} {_label(key)}" for n in dense)]
    rows = []
    for dim in dims:
        row = [dim]
        for system in dense.values():
            value = system["results"].get(dim, {}).get(key)
            row.append("-" if value is None else f"{value:.4f}")
        rows.append(row)
    return header, rows


def _p_value(p: float, resamples: int) -> str:
    # A bootstrap p of 0 only says "below the resolution of the resampling".
    return f"<{1 / resamples:.0e}" if p == 0 else f"{p:.4f}"


def comparison_rows(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    header = ["System", "Model dim", "System dim", f"Δ {_label(PRIMARY_METRIC.key)} (model − system)", "95% CI", "p", "Queries"]
    rows = []
    for comp in result["comparisons"]:
        d = comp["model_minus_system"]
        mark = " *" if d["ci_low"] > 0 or d["ci_high"] < 0 else ""
        rows.append([
            comp["system"], comp["model_dim"], _dim_label(comp["system_dim"]), f"{d['delta']:+.4f}{mark}",
            f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]", _p_value(d["p_value"], d["n_resamples"]), str(d["n_queries"]),
        ])
    return header, rows


def _sections(result: dict[str, Any]) -> list[tuple[str, tuple[list[str], list[list[str]]]]]:
    sections = [("Results at full dimension", summary_rows(result)), ("nDCG@10 per Matryoshka dimension", dimension_rows(result))]
    if result["comparisons"]:
        sections.append(("Paired bootstrap differences (* = 95% CI excludes zero)", comparison_rows(result)))
    return sections


def _preamble(result: dict[str, Any]) -> str:
    counts = result["counts"]
    settings = result["settings"]
    return (
        f"Dataset `{result['dataset']['name']}` (split `{result['dataset']['split']}`): "
        f"{counts['documents']:,} documents, {counts['judged_queries']:,} judged queries "
        f"({counts['judgements']:,} judgements). Metrics by ir-measures (pytrec_eval); nDCG uses graded relevance; "
        f"a query's own id never counts as a hit. CIs: paired bootstrap over queries, "
        f"{settings['bootstrap_resamples']:,} resamples, seed {settings['seed']}. Precision {settings['precision']}."
    )


def to_markdown(result: dict[str, Any], title: str | None = None) -> str:
    lines = [f"# {title or 'Retrieval evaluation: ' + result['model'] + ' on ' + result['dataset']['name']}", "", _preamble(result), ""]
    for heading, (header, rows) in _sections(result):
        lines += [f"## {heading}", "", *markdown_table(header, rows), ""]
    for note in result.get("notes", []):
        lines.append(f"- Note: {note}")
    return "\n".join(lines).rstrip() + "\n"


def to_html(result: dict[str, Any]) -> str:
    title = html.escape(f"Retrieval evaluation: {result['model']} on {result['dataset']['name']}")
    parts = [f"<!doctype html><meta charset='utf-8'><title>{title}</title>",
             "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}</style>",
             f"<h1>{title}</h1><p>{html.escape(_preamble(result))}</p>"]
    for heading, (header, rows) in _sections(result):
        parts.append(f"<h2>{html.escape(heading)}</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    return "\n".join(parts) + "\n"


def terminal_table(result: dict[str, Any]) -> str:
    """The Markdown tables, which read well in a terminal too."""
    return to_markdown(result)
