"""The work directory: atomic artifact writes and a manifest of finished stages.

A stage is recorded in ``manifest.json`` only after all its outputs are in
place, with the hashes of its inputs, its parameters, the library versions
and the hashes of its outputs. Re-running a stage whose record still matches
(same inputs, same parameters, outputs unchanged on disk) skips it; a stage
that was interrupted has no record and simply runs again. Files are written
to a temporary name in the same directory and renamed, so a crash never
leaves a half-written artifact under its final name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fieldtune.errors import InputError
from fieldtune.hashing import json_sha256, path_sha256

logger = logging.getLogger("fieldtune.workdir")

MANIFEST_NAME = "manifest.json"
#: marks a manifest as fieldtune's, so another application's manifest.json is never taken over
MANIFEST_FORMAT = "fieldtune.workdir/1"
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; rename it over ``path`` on success only."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    binary = "b" in mode
    try:
        with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp creates 0600; artifacts are ordinary files
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_json(path: str | Path, data: Any) -> None:
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, ensure_ascii=False, sort_keys=False)
        handle.write("\n")


def write_jsonl(path: str | Path, records: Iterable[Mapping[str, Any]]) -> int:
    count = 0
    with atomic_write(path) as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False))
            handle.write("\n")
            count += 1
    return count


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def read_append_log(path: Path, entry: Callable[[dict[str, Any]], tuple[str, Any]]) -> dict[str, Any]:
    """Key -> value from a JSONL file that runs append to and flush line by line (a resumable cache).

    ``entry`` turns one record into ``(key, value)``. A last line cut short by an interruption is
    dropped and trimmed from the file (so the next append starts on a fresh line); any other
    unreadable line is skipped with a warning naming it, since a cache entry can always be remade.
    """
    entries: dict[str, Any] = {}
    if not path.exists():
        return entries
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        logger.warning("%s: dropping an incomplete last line (an interrupted run)", path)
        with open(path, "r+b") as handle:
            handle.truncate(complete)
    for number, line in enumerate(data[:complete].decode("utf-8", "replace").splitlines(), 1):
        with contextlib.suppress(json.JSONDecodeError, KeyError, TypeError, ValueError):
            key, value = entry(json.loads(line))
            entries[key] = value
            continue
        if line.strip():
            logger.warning("%s, line %d: unreadable cache entry, ignored", path, number)
    return entries


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour shapes the artifacts."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in ("fieldtune", "torch", "transformers", "sentence-transformers", "tokenizers", "bm25s", "ir-measures"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


@dataclass(frozen=True)
class StageResult:
    name: str
    skipped: bool
    record: dict[str, Any]


class WorkDir:
    """A ``--out`` directory holding stage artifacts and ``manifest.json``.

    fieldtune writes only into a directory it created or already owns (its
    ``manifest.json`` says so): a non-empty folder without one, or with another
    application's manifest, is refused before anything is touched. The
    directory is created when the first stage starts, and removed again if that
    stage fails before anything was recorded, so a failed command leaves no
    empty ``--out`` behind.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.manifest_path = self.root / MANIFEST_NAME
        self._claimed = False
        self._check_ownership()

    def _check_ownership(self) -> None:
        if not self.root.exists():
            return
        if not self.root.is_dir():
            raise InputError(self.root, "is a file, not a directory", hint="--out takes a directory (new or empty)")
        if self.manifest_path.exists():
            self.manifest()  # refuses a foreign or unreadable manifest
        elif any(self.root.iterdir()):
            raise InputError(
                self.root, "is not empty and holds no fieldtune manifest.json, so fieldtune did not create it",
                hint="choose a new or empty directory: "
                "fieldtune never writes into (or deletes from) folders it did not create",
            )

    def path(self, name: str) -> Path:
        return self.root / name

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"format": MANIFEST_FORMAT, "stages": {}}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            # Never overwrite what we cannot read: the user may want to inspect it.
            raise InputError(
                self.manifest_path, f"unreadable manifest ({error})", hint="move it aside to rebuild"
            ) from error
        # Manifests written before the format key existed are ours too: a dict of stage records with keys.
        ours = (
            isinstance(data, dict)
            and isinstance(data.get("stages"), dict)
            and data.get("format", MANIFEST_FORMAT) == MANIFEST_FORMAT
            and all(isinstance(r, dict) and "key" in r for r in data["stages"].values())
        )
        if not ours:
            raise InputError(
                self.manifest_path, "is not a fieldtune work-directory manifest (another application's file?)",
                hint="choose another --out; fieldtune leaves this directory as it is",
            )
        return data

    def claim(self) -> None:
        """Create the directory and its manifest before the first stage writes anything."""
        if self.manifest_path.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.manifest_path, {"format": MANIFEST_FORMAT, "stages": {}})
        self._claimed = True

    def release_if_unused(self) -> None:
        """Undo :meth:`claim` when nothing but the empty manifest was written (the first stage failed early)."""
        if not self._claimed or self.manifest()["stages"] or any(p != self.manifest_path for p in self.root.iterdir()):
            return
        self.manifest_path.unlink()
        with contextlib.suppress(OSError):
            self.root.rmdir()
        self._claimed = False

    def _drop_record(self, name: str) -> dict[str, Any] | None:
        """Mark the stage as being rebuilt (no key, so never current; no outputs listed); return its old record."""
        manifest = self.manifest()
        previous = manifest["stages"].get(name)
        if previous is not None:
            manifest["stages"][name] = {"key": None, "outputs": {}, "running": True}
            write_json(self.manifest_path, manifest)
        return previous

    def _restore_record(self, name: str, record: dict[str, Any]) -> None:
        manifest = self.manifest()
        manifest["stages"][name] = record
        write_json(self.manifest_path, manifest)

    def _outputs_match(self, record: dict[str, Any], exclude: Collection[Path]) -> bool:
        return all((self.root / rel).exists() and path_sha256(self.root / rel, exclude) == digest
                   for rel, digest in record.get("outputs", {}).items())

    def _write_record(self, name: str, record: dict[str, Any]) -> None:
        manifest = self.manifest()
        manifest["format"] = MANIFEST_FORMAT
        manifest.setdefault("stages", {})[name] = record
        write_json(self.manifest_path, manifest)

    def is_current(self, name: str, key: str, exclude: Collection[Path] = ()) -> bool:
        record = self.manifest().get("stages", {}).get(name)
        if not record or record.get("key") != key:
            return False
        return self._outputs_match(record, exclude)

    def run_stage(
        self,
        name: str,
        *,
        inputs: Mapping[str, str | Path],
        params: Mapping[str, Any],
        outputs: Iterable[str],
        build: Callable[[], Mapping[str, Any] | None],
        force: bool = False,
        exclude: Collection[str] = (),
    ) -> StageResult:
        """Run ``build`` unless a matching record says its outputs are current.

        ``inputs`` maps a label to a file or directory whose content is hashed;
        ``outputs`` are paths relative to the work directory that ``build``
        must create. ``build`` may return a small dict of statistics that is
        stored in the record (and shown in reports).
        """
        skip = [self.root / rel for rel in exclude]
        input_hashes = {label: path_sha256(p, skip) for label, p in inputs.items()}
        key = json_sha256({"inputs": input_hashes, "params": dict(params)})
        if not force and self.is_current(name, key, skip):
            logger.info("stage %s: inputs and parameters unchanged, skipping", name)
            return StageResult(name, True, self.manifest()["stages"][name])
        started = time.time()
        self.claim()
        # The stage is about to rewrite its outputs: its old record goes first, so a run killed halfway
        # never leaves a record whose output hashes no longer match (the rerun simply redoes the stage).
        previous = self._drop_record(name)
        try:
            stats = build() or {}
        except BaseException:
            # A stage that failed before touching its outputs (bad input) leaves the manifest as it was.
            if previous is not None and self._outputs_match(previous, skip):
                self._restore_record(name, previous)
            self.release_if_unused()
            raise
        output_list = list(outputs)
        missing = [rel for rel in output_list if not (self.root / rel).exists()]
        if missing:
            raise RuntimeError(f"stage {name} did not produce {missing}")
        record = {
            "key": key,
            "inputs": {label: {"path": str(p), "sha256": input_hashes[label]} for label, p in inputs.items()},
            "params": dict(params),
            "versions": library_versions(),
            "outputs": {rel: path_sha256(self.root / rel, skip) for rel in output_list},
            "stats": dict(stats),
            "seconds": round(time.time() - started, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._write_record(name, record)
        return StageResult(name, False, record)
