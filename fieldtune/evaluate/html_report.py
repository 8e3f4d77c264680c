"""The evaluation report as one self-contained HTML page: plots, tables, and the queries that moved most.

``fieldtune eval --report report.html`` writes it for one evaluation set; a
build writes ``DIR/report.html`` with one section per set (the derived test
set, then every ``--eval-data`` set). Everything is inline (the plots are PNG
``data:`` URIs, the style a ``<style>`` block): the file can be mailed,
attached to an issue or opened offline, and it loads nothing from anywhere.

Text from the data (query texts, system names) is HTML-escaped; no script.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path

from fieldtune.errors import MissingExtraError
from fieldtune.evaluate.per_query import biggest_changes
from fieldtune.evaluate.plots import Plot, full_dim_comparisons, plots
from fieldtune.evaluate.report import preamble, sections
from fieldtune.evaluate.result import EvaluationResult
from fieldtune.workdir import atomic_write

#: File a build writes the report to, in its work directory.
REPORT_HTML = "report.html"
#: Queries listed as biggest wins and as biggest losses, per baseline.
N_EXTREMES = 5
#: Longest query text shown in the lists (longer ones are cut with an ellipsis).
MAX_SHOWN_QUERY_CHARS = 300

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;padding:0 1em;line-height:1.45}"
    "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #ccc;padding:.25em .6em}"
    "td{text-align:right}td.q{text-align:left;max-width:40em}figure{margin:1em 0}"
    "figure img{max-width:100%;height:auto;border:1px solid #eee}figcaption{color:#555;font-size:.9em}"
    ".win{color:#0a6b2b}.loss{color:#a30000}.note{color:#555}"
)


def _e(text: object) -> str:
    return html.escape(str(text))


def _cell(text: str, left: bool) -> str:
    # The Markdown tables mark the model under test as **name**: bold here too.
    bold = text.startswith("**") and text.count("**") == 2
    inner = "<strong>" + _e(text[2:].replace("**", "", 1)) + "</strong>" if bold else _e(text)
    return f"<td class='q'>{inner}</td>" if left else f"<td>{inner}</td>"


def _table(header: list[str], rows: list[list[str]], left: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(c, i in left) for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (f"<figure class='plot' id='{_e(plot.name)}'><img alt='{_e(plot.caption)}' "
            f"src='data:image/png;base64,{data}'><figcaption>{_e(plot.caption)}</figcaption></figure>")


def _query(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_QUERY_CHARS else text[: MAX_SHOWN_QUERY_CHARS - 1] + "…"


def _extremes(result: EvaluationResult) -> list[str]:
    """Per baseline, the queries the model gained and lost most on, as text, at full dimension."""
    if result.per_query is None:
        return ["<p class='note'>This result kept no per-query scores (written by an older fieldtune): "
                "re-run the evaluation for the scatter and the lists of queries.</p>"]
    parts = []
    header = ["Query", "Query id", "Baseline", "Model", "Gain"]
    for comp in full_dim_comparisons(result):
        gains = result.per_query.gains(result.model, comp.model_dim, comp.system, comp.system_dim)
        wins, losses = biggest_changes(gains, N_EXTREMES)
        parts.append(f"<h3>Against {_e(comp.system)} (model dim {_e(comp.model_dim)}, "
                     f"{_e(comp.system)} dim {_e(comp.system_dim)})</h3>")
        counts = (sum(g.gain > 0 for g in gains), sum(g.gain < 0 for g in gains), sum(g.gain == 0 for g in gains))
        parts.append(f"<p>{counts[0]:,} queries gained, {counts[1]:,} lost, {counts[2]:,} unchanged.</p>")
        for label, css, chosen in (("Biggest wins", "win", wins), ("Biggest losses", "loss", losses)):
            rows = [[_query(g.text), g.query_id, f"{g.baseline:.4f}", f"{g.model:.4f}", f"{g.gain:+.4f}"]
                    for g in chosen]
            parts.append(f"<h4 class='{css}'>{label}</h4>")
            parts.append(_table(header, rows, left=(0,)) if rows else "<p class='note'>none</p>")
    return parts


def result_section(result: EvaluationResult, heading: str | None = None) -> str:
    """One evaluation set: what was measured, the plots, the tables, the queries that moved most."""
    title = heading or f"{result.model} on {result.dataset.name}"
    parts = [f"<section><h2>{_e(title)}</h2><p>{_e(preamble(result))}</p>"]
    try:
        parts += [_figure(plot) for plot in plots(result)]
    except MissingExtraError as error:  # a build without the report extra still gets its tables
        parts.append(f"<p class='note'>No plots: {_e(error)}</p>")
    for section, (header, rows) in sections(result):
        parts.append(f"<h3>{_e(section)}</h3>" + _table(header, rows))
    if result.comparisons:
        parts.append("<h3>Queries that moved most (nDCG@10)</h3>")
        parts += _extremes(result)
    parts += [f"<p class='note'>Note: {_e(note)}</p>" for note in result.notes]
    parts.append("</section>")
    return "\n".join(parts)


def to_html(results: Mapping[str, EvaluationResult] | EvaluationResult, title: str | None = None) -> str:
    """The whole page for one result, or for several by set name (a build's derived and external sets)."""
    if isinstance(results, EvaluationResult):
        results = {results.dataset.name: results}
    if not results:
        raise ValueError("no evaluation results to report")
    first = next(iter(results.values()))
    heading = title or f"Retrieval evaluation: {first.model}"
    body = [result_section(result, f"{name}: {result.model} on {result.dataset.name}" if len(results) > 1 else None)
            for name, result in results.items()]
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{_e(heading)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{_e(heading)}</h1>\n" + "\n".join(body) + "\n</body></html>\n")


def read_results(eval_dir: Path, first: str | None = None) -> dict[str, EvaluationResult]:
    """A build's ``eval/<set>.json`` results by set name: set ``first`` (the derived set), then the rest by name."""
    paths = sorted(eval_dir.glob("*.json"), key=lambda p: (p.stem != first, p.stem))
    return {path.stem: EvaluationResult.read(path) for path in paths}


def write_report(results: Mapping[str, EvaluationResult] | EvaluationResult, path: str | Path,
                 title: str | None = None) -> Path:
    """Write :func:`to_html` to ``path`` atomically."""
    path = Path(path)
    with atomic_write(path) as handle:
        handle.write(to_html(results, title))
    return path
