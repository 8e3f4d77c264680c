"""What training leaves on disk: resumable checkpoints and the final model directory.

Checkpoints live in ``<out>/checkpoints/checkpoint-<step>`` next to a record
of the run they belong to (options and data hashes), so a changed run never
resumes from a stale checkpoint. The trainer writes a checkpoint in place and
its ``trainer_state.json`` last; a checkpoint counts as valid only when that
file parses and the weights, optimizer and scheduler are present. Beside the
trainer's files each checkpoint holds ``fieldtune-time.json``: the seconds of
the time budget the run had spent when it was saved (rewritten with the
seconds at the interruption when a run is interrupted), so a resumed run
continues the budget instead of starting it again.

The final model is written to ``<out>/model.tmp-XXXX`` and renamed to
``<out>/model`` only when complete (an existing ``model`` is moved aside just
before and deleted just after), so ``<out>/model`` is never half-written.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fieldtune.model_record import ModelRecord
from fieldtune.workdir import json_sha256, write_json

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger("fieldtune.training")

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
RUN_RECORD = "fieldtune-run.json"
#: Seconds of the time budget spent when the checkpoint was saved (or the run interrupted after it).
SPENT_RECORD = "fieldtune-time.json"
TRAINER_STATE = "trainer_state.json"
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_REQUIRED = ("modules.json", "optimizer.pt", "scheduler.pt")


def checkpoint_path(directory: Path, step: int) -> Path:
    """Where the trainer saves the checkpoint of ``step`` (its ``checkpoint-<step>`` naming)."""
    return directory / f"checkpoint-{step}"


def checkpoint_step(path: Path) -> int | None:
    """The global step a checkpoint directory holds, from its name."""
    match = CHECKPOINT_RE.match(path.name)
    return int(match.group(1)) if match else None


def is_valid_checkpoint(path: Path) -> bool:
    """A complete checkpoint: trainer state readable, weights, optimizer and scheduler present."""
    if not path.is_dir() or checkpoint_step(path) is None:
        return False
    if not all((path / name).is_file() for name in _REQUIRED):
        return False
    if not any((path / name).is_file() for name in _WEIGHTS):
        return False
    try:
        state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(state, dict) and state.get("global_step") == checkpoint_step(path)


def latest_checkpoint(directory: Path) -> Path | None:
    """The valid checkpoint with the highest step, or None."""
    if not directory.is_dir():
        return None
    candidates = sorted(
        (p for p in directory.iterdir() if checkpoint_step(p) is not None),
        key=lambda p: checkpoint_step(p) or 0,
        reverse=True,
    )
    for candidate in candidates:
        if is_valid_checkpoint(candidate):
            return candidate
        logger.warning("ignoring incomplete checkpoint %s (interrupted while saving?)", candidate)
    return None


def checkpoint_global_step(path: Path) -> int:
    return int(json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))["global_step"])


def record_spent_seconds(checkpoint: Path, seconds: float) -> None:
    """Write the seconds of the budget spent so far beside the checkpoint's own files."""
    write_json(checkpoint / SPENT_RECORD, {"seconds": round(seconds, 3)})


def spent_seconds(checkpoint: Path) -> float:
    """The seconds recorded by :func:`record_spent_seconds`; 0 for a checkpoint without a readable record.

    A checkpoint written before the record existed (or one whose record was
    lost) resumes with a whole budget, as every resumed run did before.
    """
    try:
        seconds = json.loads((checkpoint / SPENT_RECORD).read_text(encoding="utf-8"))["seconds"]
        return max(0.0, float(seconds))
    except (OSError, ValueError, KeyError, TypeError):
        logger.warning("%s records no time spent: the resumed run gets its whole time budget", checkpoint)
        return 0.0


def _clear_checkpoints(directory: Path) -> None:
    for path in directory.iterdir():
        if checkpoint_step(path) is not None and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def resumable_checkpoint(directory: Path, identity: dict[str, Any]) -> Path | None:
    """The checkpoint to resume from, if ``directory`` holds one of this very run.

    Checkpoints from a run with other options or data are deleted (they are
    ours, and resuming from them would silently mix two runs). Records this
    run's identity for the next call.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = json_sha256(identity)
    record_path = directory / RUN_RECORD
    recorded = None
    with contextlib.suppress(OSError, ValueError):
        recorded = json.loads(record_path.read_text(encoding="utf-8")).get("key")
    found = latest_checkpoint(directory)
    if recorded != key:
        if any(checkpoint_step(p) is not None for p in directory.iterdir()):
            logger.warning(
                "checkpoints in %s belong to a run with other options or data: starting afresh",
                directory,
            )
            _clear_checkpoints(directory)
        found = None
        write_json(record_path, {"key": key, "identity": identity})
    return found


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def remove_stale(final_dir: Path) -> None:
    """Delete temporary model directories left by an interrupted save."""
    for path in final_dir.parent.glob(f"{final_dir.name}.tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
    if final_dir.exists():
        for path in final_dir.parent.glob(f"{final_dir.name}.old-*"):
            shutil.rmtree(path, ignore_errors=True)


def publish_model(model: SentenceTransformer, final_dir: Path, record: ModelRecord) -> None:
    """Save ``model`` plus its ``record`` (``fieldtune.json``) to ``final_dir``, all or nothing."""
    parent = final_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{final_dir.name}.tmp-", dir=parent))
    try:
        model.save(str(tmp))
        record.write(tmp)
        _fsync_tree(tmp)
        if final_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{final_dir.name}.old-", dir=parent))
            old.rmdir()
            os.replace(final_dir, old)
            os.replace(tmp, final_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("model saved to %s", final_dir)
