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
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger("fieldtune.workdir")

MANIFEST_NAME = "manifest.json"
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


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256_cached(path: Path) -> str:
    """``file_sha256`` memoised by (path, size, mtime): model weights are hashed once per process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASH_CACHE:
        _HASH_CACHE[key] = file_sha256(path)
    return _HASH_CACHE[key]


def path_sha256(path: str | Path) -> str:
    """Hash of a file, or of every file under a directory (names and contents)."""
    path = Path(path)
    if path.is_file():
        return file_sha256_cached(path)
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(item.relative_to(path).as_posix().encode())
        digest.update(file_sha256_cached(item).encode())
    return digest.hexdigest()


def json_sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour shapes the artifacts."""
    from importlib import metadata
    import platform

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
    """A ``--out`` directory holding stage artifacts and ``manifest.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.manifest_path = self.root / MANIFEST_NAME

    def path(self, name: str) -> Path:
        return self.root / name

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"stages": {}}
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            # Never overwrite what we cannot read: the user may want to inspect it.
            from fieldtune.errors import InputError

            raise InputError(self.manifest_path, f"unreadable manifest ({error})", hint="move it aside to rebuild") from error

    def _write_record(self, name: str, record: dict[str, Any]) -> None:
        manifest = self.manifest()
        manifest.setdefault("stages", {})[name] = record
        write_json(self.manifest_path, manifest)

    def is_current(self, name: str, key: str) -> bool:
        record = self.manifest().get("stages", {}).get(name)
        if not record or record.get("key") != key:
            return False
        for rel, digest in record.get("outputs", {}).items():
            target = self.root / rel
            if not target.exists() or path_sha256(target) != digest:
                return False
        return True

    def run_stage(
        self,
        name: str,
        *,
        inputs: Mapping[str, str | Path],
        params: Mapping[str, Any],
        outputs: Iterable[str],
        build: Callable[[], Mapping[str, Any] | None],
        force: bool = False,
    ) -> StageResult:
        """Run ``build`` unless a matching record says its outputs are current.

        ``inputs`` maps a label to a file or directory whose content is hashed;
        ``outputs`` are paths relative to the work directory that ``build``
        must create. ``build`` may return a small dict of statistics that is
        stored in the record (and shown in reports).
        """
        input_hashes = {label: path_sha256(p) for label, p in inputs.items()}
        key = json_sha256({"inputs": input_hashes, "params": dict(params)})
        if not force and self.is_current(name, key):
            logger.info("stage %s: inputs and parameters unchanged, skipping", name)
            return StageResult(name, True, self.manifest()["stages"][name])
        started = time.time()
        stats = build() or {}
        output_list = list(outputs)
        missing = [rel for rel in output_list if not (self.root / rel).exists()]
        if missing:
            raise RuntimeError(f"stage {name} did not produce {missing}")
        record = {
            "key": key,
            "inputs": {label: {"path": str(p), "sha256": input_hashes[label]} for label, p in inputs.items()},
            "params": dict(params),
            "versions": library_versions(),
            "outputs": {rel: path_sha256(self.root / rel) for rel in output_list},
            "stats": dict(stats),
            "seconds": round(time.time() - started, 3),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        self._write_record(name, record)
        return StageResult(name, False, record)
