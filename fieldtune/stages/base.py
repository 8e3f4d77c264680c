"""What a stage is, what it sees, and the guard that keeps its declarations honest.

A :class:`Stage` declares the artifacts it reads (``inputs``), the ones it
publishes (``outputs``), working space it may use freely (``scratch``, e.g.
training checkpoints), its parameters, and any file outside the work
directory whose content it depends on (``sources``: the corpus, evaluation
sets). :func:`fieldtune.build.run_build` hashes inputs, sources and
parameters into the stage's key; an unchanged key skips the stage.

While a stage runs, :func:`guard_reads` watches every file the process opens
inside the work directory (a ``sys.addaudithook`` hook): opening an artifact
that is neither an input, an output, scratch space nor the shared cache is an
:class:`UndeclaredArtifactError`, even when the stage bypasses its
:class:`Artifacts` view.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fieldtune.config import BuildConfig
from fieldtune.stages.artifacts import CACHE, MANIFEST, Artifacts, UndeclaredArtifactError, covers
from fieldtune.workdir import WorkDir


@dataclass
class StageContext:
    """What a running stage gets: the build's configuration and its view of the work directory."""

    config: BuildConfig
    corpus: Path
    workdir: WorkDir
    artifacts: Artifacts
    outputs: tuple[str, ...]
    scratch: tuple[str, ...] = ()

    def output(self, name: str) -> Path:
        """Where to write the declared output (or scratch path) ``name``."""
        if not any(covers(declared, name) for declared in self.outputs + self.scratch):
            raise UndeclaredArtifactError(
                f"stage {self.artifacts.stage!r} writes {name!r}, which it does not declare as an output"
            )
        return self.workdir.path(name)


def _no_sources(config: BuildConfig, corpus: Path) -> Mapping[str, Path]:
    return {}


def _always(config: BuildConfig) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One step of the build (see the module docstring)."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    run: Callable[[StageContext], Mapping[str, Any]]
    params: Callable[[BuildConfig], Mapping[str, Any]]
    sources: Callable[[BuildConfig, Path], Mapping[str, Path]] = _no_sources
    scratch: tuple[str, ...] = ()
    #: whether this build runs the stage at all (query-side stages run only with the user's queries)
    enabled: Callable[[BuildConfig], bool] = _always


class _ReadGuard:
    """One process-wide audit hook; it checks opens only while a stage is being watched."""

    def __init__(self) -> None:
        # Process-wide, not per thread: a stage's worker threads (data loading, encoding) are watched too.
        self._watch: tuple[Path, tuple[str, ...], str, list[str]] | None = None
        self._installed = False
        self._lock = threading.Lock()

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        watch = self._watch
        if watch is None or event != "open" or not args or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        root, allowed, stage, seen = watch
        try:
            path = Path(os.fsdecode(args[0])).resolve()
            relative = path.relative_to(root).as_posix()
        except (ValueError, OSError):
            return  # outside the work directory: the base model, the corpus, libraries
        name = relative.split("/")
        # Atomic writes open ".<name>.<random>.tmp" beside the artifact.
        if name[-1].startswith(".") and name[-1].endswith(".tmp"):
            return
        if not any(covers(declared, relative) for declared in allowed):
            seen.append(relative)

    @contextlib.contextmanager
    def watch(self, root: Path, allowed: tuple[str, ...], stage: str) -> Iterator[None]:
        with self._lock:
            if not self._installed:
                sys.addaudithook(self._hook)
                self._installed = True
        seen: list[str] = []
        previous = self._watch
        self._watch = (root.resolve(), allowed, stage, seen)
        try:
            yield
        finally:
            self._watch = previous
        if seen:
            raise UndeclaredArtifactError(
                f"stage {stage!r} opened {sorted(set(seen))[:5]} in the work directory without declaring them "
                f"(declared: {', '.join(allowed)}); add them to the stage's inputs, outputs or scratch"
            )


_GUARD = _ReadGuard()


def guard_reads(stage: Stage, workdir: WorkDir) -> contextlib.AbstractContextManager[None]:
    """Watch the files ``stage`` opens in ``workdir`` (see the module docstring)."""
    # The manifest is the runner's record of finished stages, which reports (the card) may read.
    allowed = stage.inputs + stage.outputs + stage.scratch + (CACHE, MANIFEST)
    return _GUARD.watch(workdir.root, allowed, stage.name)
