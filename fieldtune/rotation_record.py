"""The record beside a rotated build model of whose embeddings it is before its rotation.

:func:`fieldtune.rotation.add_rotation` appends a rotation to a model a build
already encoded (the gate's winner, or the kept base) and records that
model's weights here, so an encoder of the rotated model can read their
cached embeddings and rotate them (:mod:`fieldtune.encoding`), instead of
encoding the corpus again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fieldtune.hashing import path_sha256
from fieldtune.model_record import MODEL_RECORD, NON_WEIGHT_FILES
from fieldtune.workdir import atomic_write

logger = logging.getLogger("fieldtune.rotation_record")

#: beside a rotated model's weights: which weights its embeddings are before the rotation, and the rotation
ROTATION_FILE = "fieldtune-rotation.json"
ROTATION_MATRIX = "fieldtune-rotation.npy"


@dataclass(frozen=True)
class UnrotatedSource:
    """The weights (an Encoder's weights key) whose embeddings, times ``rotation``, are a rotated model's."""

    weights_key: str
    rotation: np.ndarray


def _weights_only(model_dir: Path) -> str:
    """Hash of a model directory's files that change its embeddings (not its records, card or rotation record)."""
    return path_sha256(model_dir, [model_dir / name for name in (*NON_WEIGHT_FILES, MODEL_RECORD, ROTATION_FILE)])


def record_unrotated_source(model_dir: Path, weights_key: str, rotation: np.ndarray) -> None:
    """Record that ``model_dir``'s embeddings are ``weights_key``'s times ``rotation`` (just appended to it)."""
    np.save(model_dir / ROTATION_MATRIX, rotation)
    record = {"unrotated_weights": weights_key, "rotated_weights": _weights_only(model_dir)}
    with atomic_write(model_dir / ROTATION_FILE, "w") as handle:
        json.dump(record, handle, indent=2)


def unrotated_source(model_dir: Path) -> UnrotatedSource | None:
    """What a rotated build model's embeddings are before its rotation, or None (not recorded, or edited since).

    The record holds a hash of the weights as the build left them; a model
    whose files changed since is encoded as it is, with no shortcut.
    """
    path = Path(model_dir) / ROTATION_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        rotation = np.load(Path(model_dir) / ROTATION_MATRIX)
    except (OSError, ValueError) as error:
        logger.warning("ignoring the rotation record of %s: %s", model_dir, error)
        return None
    if _weights_only(Path(model_dir)) != record.get("rotated_weights"):
        logger.info("%s changed since its rotation was recorded: encoding it as it is", model_dir)
        return None
    return UnrotatedSource(weights_key=str(record["unrotated_weights"]), rotation=rotation.astype(np.float32))
