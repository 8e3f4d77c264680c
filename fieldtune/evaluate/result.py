"""What ``fieldtune eval`` measured, as one typed record with a JSON round trip.

:func:`fieldtune.evaluate.harness.run_evaluation` returns an
:class:`EvaluationResult`; the gate, the build, the card, the reports and the
benchmarks read numbers from it with :meth:`EvaluationResult.score` instead of
digging into nested dicts. Each system keeps its per-dimension means in the
order it was evaluated, the first being its full dimension (``"384"`` for a
384-d model, ``"full"`` for BM25), which is what ``dim=None`` means.

:meth:`EvaluationResult.to_dict` is exactly the JSON that ``eval --json`` and a
build's ``eval/<set>.json`` have always held, and :meth:`EvaluationResult.from_dict`
reads any such file back; top-level keys this module does not know are kept in
``extra`` and written back, so a file from a newer fieldtune still loads.
Results from :func:`~fieldtune.evaluate.harness.run_evaluation` also carry
``per_query`` (:class:`~fieldtune.evaluate.per_query.PerQueryScores`: nDCG@10
per query, for the HTML report); a file written before it was kept has None.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fieldtune.errors import InputError
from fieldtune.evaluate.bootstrap import PairedDifference
from fieldtune.evaluate.metrics import Metric, parse_metric
from fieldtune.evaluate.per_query import PerQueryScores
from fieldtune.workdir import write_json

#: Top-level keys of the JSON form, in the order they are written.
_KEYS = ("dataset", "counts", "model", "systems", "comparisons", "settings", "notes", "seconds", "per_query")


def _metric_key(metric: str | Metric) -> str:
    return metric.key if isinstance(metric, Metric) else parse_metric(metric).key


@dataclass(frozen=True)
class DatasetInfo:
    """Which evaluation set and split were scored."""

    name: str
    path: str
    split: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": self.path, "split": self.split}


@dataclass(frozen=True)
class Counts:
    """Sizes of the evaluation set: what a reader needs to judge how much a number can be trusted."""

    documents: int
    queries: int
    judged_queries: int
    judgements: int

    def to_dict(self) -> dict[str, Any]:
        return {"documents": self.documents, "queries": self.queries,
                "judged_queries": self.judged_queries, "judgements": self.judgements}


@dataclass(frozen=True)
class SystemResult:
    """One system's mean metrics per dimension (dimension label -> metric key -> mean over judged queries)."""

    kind: str
    model: str | None
    dimension: int | None
    results: Mapping[str, Mapping[str, float]]

    @property
    def full_dim(self) -> str:
        """The label of the system's full dimension: the first one evaluated."""
        try:
            return next(iter(self.results))
        except StopIteration:
            raise LookupError("the system has no results") from None

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(self.results)

    def score(self, metric: str | Metric, dim: str | int | None = None) -> float:
        """The mean of ``metric`` at ``dim`` (None: the full dimension)."""
        label = self.full_dim if dim is None else str(dim)
        if label not in self.results:
            raise LookupError(f"no results at dimension {label!r} (evaluated: {', '.join(self.results)})")
        key = _metric_key(metric)
        metrics = self.results[label]
        if key not in metrics:
            raise LookupError(f"metric {key!r} was not computed (computed: {', '.join(metrics)})")
        return metrics[key]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "dimension": self.dimension,
                "results": {dim: dict(metrics) for dim, metrics in self.results.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SystemResult:
        return cls(kind=data["kind"], model=data.get("model"), dimension=data.get("dimension"),
                   results={str(dim): dict(metrics) for dim, metrics in data["results"].items()})


@dataclass(frozen=True)
class Comparison:
    """The paired-bootstrap difference ``model under test - system`` of one metric at one pair of dimensions."""

    system: str
    system_dim: str
    model_dim: str
    metric: str
    model_minus_system: PairedDifference

    def to_dict(self) -> dict[str, Any]:
        return {"system": self.system, "system_dim": self.system_dim, "model_dim": self.model_dim,
                "metric": self.metric, "model_minus_system": self.model_minus_system.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        return cls(system=data["system"], system_dim=data["system_dim"], model_dim=data["model_dim"],
                   metric=data["metric"], model_minus_system=PairedDifference(**data["model_minus_system"]))


@dataclass(frozen=True)
class Settings:
    """How the numbers were computed, so two results can be compared knowingly."""

    metrics: tuple[str, ...]
    precision: str
    bootstrap_resamples: int
    seed: int
    confidence: float
    difference: str

    def to_dict(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "precision": self.precision,
                "bootstrap_resamples": self.bootstrap_resamples, "seed": self.seed,
                "confidence": self.confidence, "difference": self.difference}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settings:
        return cls(metrics=tuple(data["metrics"]), precision=data["precision"],
                   bootstrap_resamples=data["bootstrap_resamples"], seed=data["seed"],
                   confidence=data["confidence"], difference=data["difference"])


@dataclass(frozen=True)
class EvaluationResult:
    """A model under test and its baselines scored on one evaluation set (see the module docstring)."""

    dataset: DatasetInfo
    counts: Counts
    #: name of the model under test; a key of ``systems``
    model: str
    #: every system by name, the model under test first
    systems: Mapping[str, SystemResult]
    comparisons: tuple[Comparison, ...]
    settings: Settings
    notes: tuple[str, ...] = ()
    #: wall time: ``total`` and one entry per system
    seconds: Mapping[str, float] = field(default_factory=dict)
    #: the primary metric per query (the report's scatter); None for a file written before it was kept
    per_query: PerQueryScores | None = None
    #: top-level keys of a file that this version does not know, written back unchanged
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in self.systems:
            names = ", ".join(self.systems)
            raise ValueError(f"the model under test {self.model!r} is not among the systems ({names})")

    @property
    def system_names(self) -> tuple[str, ...]:
        """Every system's name, the model under test first."""
        return tuple(self.systems)

    @property
    def baselines(self) -> tuple[str, ...]:
        """Names of the systems other than the model under test, in evaluation order."""
        return tuple(name for name in self.systems if name != self.model)

    def system(self, name: str | None = None) -> SystemResult:
        """A system by name (None: the model under test)."""
        key = self.model if name is None else name
        if key not in self.systems:
            raise LookupError(f"no system {key!r} in this result (systems: {', '.join(self.systems)})")
        return self.systems[key]

    def score(self, metric: str | Metric, dim: str | int | None = None, system: str | None = None) -> float:
        """Mean ``metric`` of ``system`` (None: the model under test) at ``dim`` (None: its full dimension)."""
        return self.system(system).score(metric, dim)

    def full_scores(self, metric: str | Metric) -> dict[str, float]:
        """``metric`` at full dimension for every system, by name, in evaluation order."""
        return {name: entry.score(metric) for name, entry in self.systems.items()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, key for key and in the same order as ``eval --json`` has always written it."""
        return {
            "dataset": self.dataset.to_dict(),
            "counts": self.counts.to_dict(),
            "model": self.model,
            "systems": {name: entry.to_dict() for name, entry in self.systems.items()},
            "comparisons": [c.to_dict() for c in self.comparisons],
            "settings": self.settings.to_dict(),
            "notes": list(self.notes),
            "seconds": dict(self.seconds),
            **({} if self.per_query is None else {"per_query": self.per_query.to_dict()}),
            **{key: value for key, value in self.extra.items() if key not in _KEYS},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        """Read the JSON form back; a missing required key raises ``ValueError`` naming it."""
        missing = [key for key in ("dataset", "counts", "model", "systems", "settings") if key not in data]
        if missing:
            raise ValueError(f"not an evaluation result: missing {', '.join(missing)}")
        return cls(
            dataset=DatasetInfo(**data["dataset"]),
            counts=Counts(**data["counts"]),
            model=data["model"],
            systems={name: SystemResult.from_dict(entry) for name, entry in data["systems"].items()},
            comparisons=tuple(Comparison.from_dict(c) for c in data.get("comparisons", [])),
            settings=Settings.from_dict(data["settings"]),
            notes=tuple(data.get("notes", [])),
            seconds=dict(data.get("seconds", {})),
            per_query=PerQueryScores.from_dict(data["per_query"]) if data.get("per_query") else None,
            extra={key: value for key, value in data.items() if key not in _KEYS},
        )

    @classmethod
    def read(cls, path: str | Path) -> EvaluationResult:
        """Load an ``eval --json`` file (or a build's ``eval/<set>.json``); errors name the file."""
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as error:
            raise InputError(path, f"not a readable evaluation result ({error})") from error

    def write(self, path: str | Path) -> None:
        """Write the JSON form atomically."""
        write_json(path, self.to_dict())
