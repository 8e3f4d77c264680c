"""The records a fieldtune model directory holds: ``fieldtune.json`` (how it was made) and ``gate.json``.

``fieldtune.json`` is written by training (:class:`ModelRecord`), rewritten by
the quality gate when it installs an average with the base or keeps the base,
and read by the card, by ``eval --baseline base`` (the base a model was tuned
from) and by the ONNX export. ``gate.json`` (:class:`GateRecord`) says which
candidate the quality gate installed and why.

Both read back what they write, key for key and in the same order. A file
with keys this version does not know (written by a newer fieldtune, or by
hand) still loads: those keys stay in ``extra`` and are written back after the
known ones. Known keys missing from an old file read as ``None`` (or empty).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fieldtune.errors import InputError
from fieldtune.evaluate.plots import CARD_FIGURES
from fieldtune.workdir import write_json

#: ``extra`` keys of a query-side model (fieldtune.training.query_model) that describe the trained weights' routes
TRAINED_ROUTE_KEYS = ("query_side", "document_fingerprint")

#: File name of the training record inside a model directory (the only definition).
MODEL_RECORD = "fieldtune.json"
#: files and folders a build writes beside a model's weights that do not change its embeddings
NON_WEIGHT_FILES = ("README.md", "gate.json", CARD_FIGURES)
#: File name of the quality gate's record inside a build's ``model/``.
GATE_RECORD = "gate.json"

#: The training record's keys, in the order training writes them.
_TRAINING_KEYS = (
    "base_model", "matryoshka_dims", "prompts", "train_pairs", "dev_pairs", "train_examples", "steps",
    "best_step", "best_eval_loss", "stopped_because", "seed", "precision", "device", "seconds",
    "resumed_from", "config",
)
#: Keys the quality gate adds, written after the training keys and only when set.
_GATE_KEYS = ("weight_average", "kept_base", "note")


def _read_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise InputError(path, f"is not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise InputError(path, f"expected a JSON object, got {type(data).__name__}")
    return data


@dataclass(frozen=True)
class WeightAverage:
    """The installed weights are ``alpha * trained + (1 - alpha) * base``."""

    alpha: float
    base: str

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "base": self.base}


@dataclass(frozen=True)
class ModelRecord:
    """What ``fieldtune.json`` records about a tuned model: its base, its training run, and the gate's changes."""

    base_model: str | None = None
    matryoshka_dims: tuple[int, ...] = ()
    prompts: Mapping[str, str] = field(default_factory=dict)
    train_pairs: int | None = None
    dev_pairs: int | None = None
    train_examples: int | None = None
    steps: int | None = None
    best_step: int | None = None
    best_eval_loss: float | None = None
    #: a :class:`fieldtune.training.config.StoppedBecause` value
    stopped_because: str | None = None
    seed: int | None = None
    precision: str | None = None
    device: str | None = None
    seconds: float | None = None
    resumed_from: str | None = None
    #: the training configuration as run (``TrainConfig.to_dict()`` plus the planned schedule)
    config: Mapping[str, Any] = field(default_factory=dict)
    #: set when the gate installed the trained weights averaged with the base
    weight_average: WeightAverage | None = None
    #: set when the gate kept the base model's weights (``"kept_base"`` in the file)
    base_weights_kept: bool = False
    note: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def loss(self) -> str | None:
        """The registered name of the training loss (``config["loss"]``), or None for a record without one."""
        value = self.config.get("loss")
        return None if value is None else str(value)

    def averaged_with(self, base: str, alpha: float) -> ModelRecord:
        """This record for the weights averaged with ``base`` (``alpha`` of the trained ones)."""
        return replace(self, weight_average=WeightAverage(alpha=alpha, base=base))

    def kept_base(self, note: str) -> ModelRecord:
        """This record for a directory holding the base's weights: the trained prompts do not apply to them.

        Nor do a query-side model's route claims (``query_side``, ``document_fingerprint``): left in, they
        made the encoder take the base's unrotated document vectors for a rotated base, and scores collapsed.
        """
        extra = {k: v for k, v in self.extra.items() if k not in TRAINED_ROUTE_KEYS}
        return replace(self, prompts={}, base_weights_kept=True, note=note, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the training keys in training's order, then the gate's keys that are set, then ``extra``."""
        data: dict[str, Any] = {
            "base_model": self.base_model, "matryoshka_dims": list(self.matryoshka_dims), "prompts": dict(self.prompts),
            "train_pairs": self.train_pairs, "dev_pairs": self.dev_pairs, "train_examples": self.train_examples,
            "steps": self.steps, "best_step": self.best_step, "best_eval_loss": self.best_eval_loss,
            "stopped_because": self.stopped_because, "seed": self.seed, "precision": self.precision,
            "device": self.device, "seconds": self.seconds, "resumed_from": self.resumed_from,
            "config": dict(self.config),
        }
        if self.weight_average is not None:
            data["weight_average"] = self.weight_average.to_dict()
        if self.base_weights_kept:
            data["kept_base"] = True
        if self.note is not None:
            data["note"] = self.note
        data.update({k: v for k, v in self.extra.items() if k not in data})
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelRecord:
        known = {key: data[key] for key in _TRAINING_KEYS if key in data}
        if "matryoshka_dims" in known:
            known["matryoshka_dims"] = tuple(known["matryoshka_dims"])
        average = data.get("weight_average")
        return cls(
            **known,
            weight_average=WeightAverage(**average) if average is not None else None,
            base_weights_kept=bool(data.get("kept_base", False)),
            note=data.get("note"),
            extra={k: v for k, v in data.items() if k not in _TRAINING_KEYS and k not in _GATE_KEYS},
        )

    @classmethod
    def path_in(cls, model_dir: str | Path) -> Path:
        return Path(model_dir) / MODEL_RECORD

    @classmethod
    def exists(cls, model_dir: str | Path) -> bool:
        """Whether ``model_dir`` holds a record (a model built by fieldtune, complete)."""
        return cls.path_in(model_dir).is_file()

    @classmethod
    def read(cls, model_dir: str | Path) -> ModelRecord:
        """The record of the model in ``model_dir``; a bad file raises an :class:`InputError` naming it."""
        path = cls.path_in(model_dir)
        if not path.is_file():
            raise InputError(path, "no model record here", hint="a directory written by fieldtune's training has one")
        data = _read_object(path)
        try:
            return cls.from_dict(data)
        except TypeError as error:
            raise InputError(path, f"is not a fieldtune model record ({error})") from error

    def write(self, model_dir: str | Path) -> Path:
        """Write ``model_dir/fieldtune.json`` atomically; returns its path."""
        path = self.path_in(model_dir)
        write_json(path, self.to_dict())
        return path


@dataclass(frozen=True)
class GateRecord:
    """The quality gate's decision: dev-split nDCG@10 of each candidate and the one installed."""

    #: ``"trained"``, ``"averaged"``, ``"adapted"``, ``"adapted-averaged"`` or ``"base"``
    chosen: str
    #: candidate -> nDCG@10 at full dimension on the dev split; empty when the gate did not run
    scores: Mapping[str, float] = field(default_factory=dict)
    #: the :class:`fieldtune.gate.GateConfig` used
    config: Mapping[str, Any] | None = None
    #: directory of the chosen candidate (empty for the base, which the build saves itself)
    directory: str | None = None
    dev_queries_file: str | None = None
    #: why the gate did not run
    reason: str | None = None
    #: what :func:`fieldtune.rotation.add_rotation` reported, when the build rotated the embeddings
    rotation: Mapping[str, Any] | None = None
    #: candidate -> paired-bootstrap nDCG@10 difference to the base on the dev queries (delta, ci_low, ci_high)
    gains: Mapping[str, Mapping[str, float]] | None = None
    #: whether a candidate had to beat the base significantly (CI above zero) to be installed
    required_significance: bool | None = None
    #: what ``scores`` measure when not nDCG@10 (e.g. minus the divergence from the teacher)
    metric: str | None = None
    #: the hybrid fusion weight chosen for the installed model on labelled dev queries
    #: (:func:`fieldtune.evaluate.fusion_weight.choose_dense_weight`); ``fieldtune index`` uses it
    hybrid: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    _KEYS = ("chosen", "scores", "config", "directory", "dev_queries_file", "reason", "rotation", "gains",
             "required_significance", "metric", "hybrid")

    @classmethod
    def not_run(cls, reason: str, chosen: str = "trained") -> GateRecord:
        """The gate could not score candidates (no dev queries): the ``chosen`` model is installed as is."""
        return cls(chosen=chosen, reason=reason)

    @property
    def ran(self) -> bool:
        return bool(self.scores)

    def with_rotation(self, rotation: Mapping[str, Any]) -> GateRecord:
        return replace(self, rotation=dict(rotation))

    def with_hybrid(self, hybrid: Mapping[str, Any] | None) -> GateRecord:
        return replace(self, hybrid=dict(hybrid) if hybrid is not None else None)

    def relative_to(self, root: Path) -> GateRecord:
        """The record with its paths inside ``root`` (the work directory) made relative to it.

        ``gate.json`` travels with the model (``fieldtune push`` uploads it): it must not carry the
        builder's home directory, and a moved work directory must still read right.
        """

        def inside(path: str | None) -> str | None:
            if not path:
                return path
            try:
                return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
            except ValueError:
                return path

        return replace(self, directory=inside(self.directory), dev_queries_file=inside(self.dev_queries_file))

    @property
    def dense_weight(self) -> float | None:
        """The hybrid fusion weight chosen for this model, if the build chose one."""
        return float(self.hybrid["dense_weight"]) if self.hybrid else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, in the key order the build has always written."""
        if self.ran:
            data: dict[str, Any] = {"scores": dict(self.scores), "chosen": self.chosen}
        else:
            data = {"chosen": self.chosen, "scores": dict(self.scores)}
        optional = {"config": self.config, "directory": self.directory, "dev_queries_file": self.dev_queries_file,
                    "reason": self.reason, "rotation": self.rotation, "gains": self.gains,
                    "required_significance": self.required_significance, "metric": self.metric,
                    "hybrid": self.hybrid}
        data.update({key: value for key, value in optional.items() if value is not None})
        data.update({k: v for k, v in self.extra.items() if k not in data})
        return data

    def stats(self) -> dict[str, Any]:
        """What the build's manifest records: the JSON form without the (work-directory) ``directory``."""
        return {k: v for k, v in self.to_dict().items() if k != "directory"}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateRecord:
        if "chosen" not in data:
            raise ValueError("missing 'chosen'")
        return cls(
            chosen=data["chosen"], scores=dict(data.get("scores", {})), config=data.get("config"),
            directory=data.get("directory"), dev_queries_file=data.get("dev_queries_file"), reason=data.get("reason"),
            rotation=data.get("rotation"), gains=data.get("gains"),
            required_significance=data.get("required_significance"),
            metric=data.get("metric"), hybrid=data.get("hybrid"),
            extra={k: v for k, v in data.items() if k not in cls._KEYS},
        )

    @classmethod
    def path_in(cls, model_dir: str | Path) -> Path:
        return Path(model_dir) / GATE_RECORD

    @classmethod
    def read(cls, model_dir: str | Path) -> GateRecord | None:
        """The gate record of a build's ``model/``, or None when the gate did not write one."""
        path = cls.path_in(model_dir)
        if not path.is_file():
            return None
        try:
            return cls.from_dict(_read_object(path))
        except (TypeError, ValueError) as error:
            raise InputError(path, f"is not a quality-gate record ({error})") from error

    def write(self, model_dir: str | Path) -> Path:
        path = self.path_in(model_dir)
        write_json(path, self.to_dict())
        return path
