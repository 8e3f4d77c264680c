"""The evaluation's pictures: nDCG@10 against dimension, and the per-query gain with its CI.

Drawn with matplotlib (the ``report`` extra: ``pip install 'fieldtune[report]'``)
on the Agg backend, so no display is needed, and returned as PNG bytes. The
HTML report inlines them as ``data:`` URIs (one self-contained file); the
model card links them as files beside the card (:func:`write_plot_files`),
which is how the Hugging Face Hub shows images in a card.

PNG rather than SVG: a scatter of a few thousand queries is a few hundred kB as
SVG and some 50 kB as a 64-colour PNG, and the report must stay under 2 MB.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldtune.errors import MissingExtraError, require_extra
from fieldtune.evaluate.metrics import PRIMARY_METRIC
from fieldtune.evaluate.result import Comparison, EvaluationResult
from fieldtune.workdir import atomic_write

#: Dots per inch of every figure: sharp on a laptop screen, small as a file.
DPI = 110
#: Most baselines drawn side by side in the gain figure (the rest are in the tables).
MAX_GAIN_PANELS = 3
LABEL = "nDCG@10"
#: Colours of the palette each PNG is reduced to.
COLORS = 64
#: Folder of the model directory that holds the card's figures.
CARD_FIGURES = "figures"


@dataclass(frozen=True)
class Plot:
    """One figure: a file-safe name, a caption saying what it shows, and the PNG bytes."""

    name: str
    caption: str
    png: bytes


def _pyplot() -> Any:
    matplotlib = require_extra("matplotlib", "report")
    matplotlib.use("Agg", force=True)  # never a window, whatever the user's default backend
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> bytes:
    """The figure as a PNG of :data:`COLORS` colours: a third of the bytes, and no visible difference on a plot."""
    from PIL import Image  # Pillow comes with matplotlib

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(figure)
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    small = io.BytesIO()
    image.quantize(colors=COLORS, method=Image.Quantize.MEDIANCUT).save(small, format="PNG", optimize=True)
    return small.getvalue()


def full_dim_comparisons(result: EvaluationResult) -> list[Comparison]:
    """The comparison with each baseline at the model's full dimension, in evaluation order."""
    model_dim = result.system().full_dim
    return [c for c in result.comparisons if c.model_dim == model_dim]


def dimension_plot(result: EvaluationResult) -> Plot:
    """nDCG@10 against dimension: a line per dense system, a dashed level for a system without dimensions (BM25)."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.8))
    key = PRIMARY_METRIC.key
    numeric = sorted({int(d) for s in result.systems.values() for d in s.dims if d.isdigit()})
    for name, system in result.systems.items():
        dims = [d for d in system.dims if d.isdigit()]
        under_test = name == result.model
        if dims:
            xs = [int(d) for d in dims]
            order = sorted(range(len(xs)), key=xs.__getitem__)
            axes.plot([xs[i] for i in order], [system.score(key, dims[i]) for i in order], marker="o",
                      linewidth=2.4 if under_test else 1.4, label=f"{name} (under test)" if under_test else name)
        else:
            axes.axhline(system.score(key), linestyle="--", color="grey", linewidth=1.2, label=name)
    if numeric:
        axes.set_xscale("log", base=2)
        axes.set_xticks(numeric, [str(d) for d in numeric])
        axes.minorticks_off()
    axes.set_xlabel("embedding dimension (Matryoshka prefix)")
    axes.set_ylabel(LABEL)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    axes.set_title(f"{LABEL} against dimension on {result.dataset.name}", fontsize=10)
    caption = (f"{LABEL} of every system at every evaluated dimension on {result.dataset.name} "
               f"({result.counts.judged_queries:,} judged queries); a dashed line is a system without dimensions.")
    return Plot("ndcg-by-dimension", caption, _png(figure))


def _ci_inset(axes: Any, delta: float, low: float, high: float) -> None:
    """The mean gain and its CI magnified in a corner: on the [-1, 1] scale of single queries the band is a hairline."""
    inset = axes.inset_axes([0.66, 0.05, 0.31, 0.24])
    inset.errorbar([0], [delta], yerr=[[delta - low], [high - delta]], fmt="o", color="tab:orange", capsize=5)
    inset.axhline(0, color="black", linewidth=0.8)
    span = max(high, 0.0) - min(low, 0.0) or 0.01
    inset.set_ylim(min(low, 0.0) - 0.25 * span, max(high, 0.0) + 0.25 * span)
    inset.set_xlim(-1, 1)
    inset.set_xticks([])
    inset.tick_params(labelsize=6)
    inset.set_title("mean, 95% CI", fontsize=6, pad=2)


def gain_plot(result: EvaluationResult) -> Plot | None:
    """Per-query gain over each baseline against the baseline's score, with the mean and its 95% CI.

    None when the result kept no per-query scores (a file from before they
    were kept) or has no baseline.
    """
    comparisons = full_dim_comparisons(result)[:MAX_GAIN_PANELS]
    if result.per_query is None or not comparisons:
        return None
    plt = _pyplot()
    figure, panels = plt.subplots(1, len(comparisons), figsize=(4.2 * len(comparisons), 3.8), squeeze=False,
                                  sharey=True)
    for axes, comp in zip(panels[0], comparisons, strict=True):
        gains = result.per_query.gains(result.model, comp.model_dim, comp.system, comp.system_dim)
        d = comp.model_minus_system
        axes.axhspan(d.ci_low, d.ci_high, color="tab:orange", alpha=0.25, label="95% CI of the mean")
        axes.axhline(d.delta, color="tab:orange", linewidth=1.6, label=f"mean {d.delta:+.4f}")
        axes.axhline(0, color="black", linewidth=0.8)
        axes.scatter([g.baseline for g in gains], [g.gain for g in gains], s=9, alpha=0.45, color="tab:blue",
                     linewidths=0, label="one query")
        _ci_inset(axes, d.delta, d.ci_low, d.ci_high)
        axes.set_xlim(-0.03, 1.03)  # both scores lie in [0, 1], so the gain lies in [-1, 1]
        axes.set_ylim(-1.05, 1.05)
        axes.set_xlabel(f"{comp.system} {LABEL} (dim {comp.system_dim})")
        axes.set_title(f"vs {comp.system}: {d.delta:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}]", fontsize=9)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7, loc="upper right")
    panels[0][0].set_ylabel(f"gain in {LABEL} (model − baseline)")
    caption = (f"One dot per judged query: {result.model}'s {LABEL} minus the baseline's, against the baseline's "
               f"score; the band is the paired-bootstrap 95% CI of the mean gain "
               f"({result.settings.bootstrap_resamples:,} resamples).")
    return Plot("per-query-gain", caption, _png(figure))


def plots(result: EvaluationResult) -> list[Plot]:
    """Every figure the result supports, in reading order."""
    return [plot for plot in (dimension_plot(result), gain_plot(result)) if plot is not None]


def write_plot_files(results: Mapping[str, EvaluationResult], directory: str | Path) -> list[tuple[Path, str]]:
    """Write each set's figures as ``<directory>/<set>-<figure>.png``; returns (path, caption) pairs.

    For the model card: the Hub renders ``![caption](file.png)`` links to
    files in the model repository, so the card links these by relative path.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for set_name, result in results.items():
        for plot in plots(result):
            path = directory / f"{set_name}-{plot.name}.png"
            with atomic_write(path, "wb") as handle:
                handle.write(plot.png)
            written.append((path, plot.caption))
    return written


def plots_markdown(files: list[tuple[Path, str]], relative_to: str | Path) -> str:
    """Markdown image links to :func:`write_plot_files`' output, relative to the card's folder."""
    base = Path(relative_to)
    lines = []
    for path, caption in files:
        lines += [f"![{caption}]({path.relative_to(base).as_posix()})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def card_figures(results: Mapping[str, EvaluationResult], model_dir: str | Path) -> str:
    """Write the figures into ``model_dir/figures/`` and return the Markdown that shows them in the card there.

    For ``fieldtune/card.py``: the card lives in ``model_dir/README.md`` and a push uploads
    ``model_dir`` whole, so the Hub finds the images by these relative links. Without the
    ``report`` extra it writes nothing and returns a line that says how to get the figures.
    """
    try:
        files = write_plot_files(results, Path(model_dir) / CARD_FIGURES)
    except MissingExtraError as error:
        return f"*No figures: {error}*\n"
    return plots_markdown(files, model_dir)
