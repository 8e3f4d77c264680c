"""The index manifest (``index.json``) as a typed, immutable record.

One :class:`IndexManifest` names everything a generation of an index is made
of (model, dimensions, storage, segments, tombstones, BM25, the dense
backend's files) and is replaced atomically, never edited, by every update
(see :mod:`fieldtune.search.state`). Modules read its fields instead of
digging into a dict, so a renamed or missing key fails in one place.

The on-disk JSON is the one fieldtune 0.1 wrote (:data:`INDEX_FORMAT` 1):
:meth:`IndexManifest.to_dict` writes the same keys in the same order, and
keys this version does not know are kept (``extra``) and written back, so a
round trip through this record changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fieldtune.search.options import IndexNotFoundError, Storage
from fieldtune.workdir import write_json

INDEX_MANIFEST = "index.json"
#: Version of the index directory layout (bumped only when an older fieldtune could misread it).
INDEX_FORMAT = 1


@dataclass(frozen=True)
class IndexedModel:
    """The model an index was encoded with, as the user named it and where it was loaded from."""

    spec: str
    location: str
    kind: str  # "bundled" | "local" | "hub" (see fieldtune.models.ModelRef)

    @property
    def load_spec(self) -> str:
        """What to load for query encoding: a local model by path (it may have moved from its
        name's meaning), bundled and hub models by name."""
        return self.location if self.kind == "local" else self.spec


@dataclass(frozen=True)
class DenseSettings:
    """The ``ann`` section: which dense backend a generation uses, its options, its files.

    ``backend`` names a registered backend when the user chose one (absent
    from the file otherwise, as in every index written so far: then the
    ANN threshold decides, see :func:`fieldtune.search.backends.choose`).
    ``config`` belongs to the backend that reads it (``AnnConfig`` for usearch),
    so the manifest stays the same whichever backend a generation uses.
    ``file`` is the backend's files relative to the index root (a directory,
    or whatever the backend records); None when it keeps none (exact search).
    """

    threshold: int
    config: Mapping[str, Any] = field(default_factory=dict)
    file: str | None = None
    backend: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = {"threshold": self.threshold, "config": dict(self.config), "file": self.file}
        return data if self.backend is None else {**data, "backend": self.backend}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DenseSettings:
        config = dict(data.get("config") or {})
        return cls(int(data["threshold"]), config, data.get("file"), data.get("backend"))


@dataclass(frozen=True)
class SegmentEntry:
    """One immutable segment of a generation: its directory (relative to the root) and sizes."""

    name: str
    rows: int
    documents: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "documents": self.documents}


@dataclass(frozen=True)
class IndexCounts:
    """Live documents and chunks of a generation, and the stored rows behind them."""

    documents: int = 0
    chunks: int = 0
    rows: int = 0
    deleted_rows: int = 0
    segments: int = 0

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class QueryModelPointer:
    """Which query encoder searches use instead of the index's model (``fieldtune adapt``).

    ``path`` is a query-side model directory relative to the index root
    (``query-models/000002``), or None for the index's own model; ``history``
    holds the earlier pointers, most recent last, so ``adapt --rollback``
    restores them one by one. ``document_fingerprint`` is the fingerprint of the
    model the documents were encoded with, checked against ``path``'s model
    when it loads: a query encoder from another document model would give
    cosines against vectors it never saw.
    """

    path: str | None = None
    history: tuple[str | None, ...] = ()
    document_fingerprint: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "history": list(self.history), "document_fingerprint": self.document_fingerprint}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> QueryModelPointer:
        history = tuple(None if item is None else str(item) for item in data.get("history") or ())
        path = data.get("path")
        return cls(None if path is None else str(path), history, str(data.get("document_fingerprint", "")))


@dataclass(frozen=True, kw_only=True)
class IndexManifest:
    """``index.json`` (see the module docstring); fields in the file's key order.

    The generation fields (``generation`` ... ``counts``) are filled by each
    commit; a manifest being prepared for a first build has their defaults.
    """

    format: int = INDEX_FORMAT
    fieldtune_version: str = ""
    created: str = ""
    updated: str = ""
    source: str = ""
    model: IndexedModel = IndexedModel("", "", "bundled")
    precision: str = "fp32"
    model_dimension: int = 0
    dimension: int
    dims: tuple[int, ...]
    storage: Storage = Storage.INT8
    chunking: Mapping[str, int] = field(default_factory=dict)
    ann: DenseSettings = DenseSettings(threshold=0)
    versions: Mapping[str, str] = field(default_factory=dict)
    generation: int = 0
    generation_dir: str = ""
    segments: tuple[SegmentEntry, ...] = ()
    bm25: bool = False
    counts: IndexCounts = IndexCounts()
    #: Written only once ``fieldtune adapt`` has set it, so an index that never adapted keeps its 0.1 file.
    query_model: QueryModelPointer | None = None
    #: Hybrid fusion's dense weight chosen for the model by its build (its gate.json); None: the default.
    dense_weight: float | None = None
    #: Keys this version does not know, written back unchanged.
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``index.json``, keys in the order fieldtune has always written."""
        return {
            "format": self.format,
            "fieldtune_version": self.fieldtune_version,
            "created": self.created,
            "updated": self.updated,
            "source": self.source,
            "model": {
                "spec": self.model.spec,
                "location": self.model.location,
                "kind": self.model.kind,
            },
            "precision": self.precision,
            "model_dimension": self.model_dimension,
            "dimension": self.dimension,
            "dims": list(self.dims),
            "storage": self.storage.value,
            "chunking": dict(self.chunking),
            "ann": self.ann.to_dict(),
            "versions": dict(self.versions),
            "generation": self.generation,
            "generation_dir": self.generation_dir,
            "segments": [segment.to_dict() for segment in self.segments],
            "bm25": self.bm25,
            "counts": self.counts.to_dict(),
            **({} if self.query_model is None else {"query_model": self.query_model.to_dict()}),
            **({} if self.dense_weight is None else {"dense_weight": self.dense_weight}),
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IndexManifest:
        """The record of a parsed ``index.json`` (KeyError/ValueError if a field is missing or bad)."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(
            format=int(data["format"]),
            fieldtune_version=str(data.get("fieldtune_version", "")),
            created=str(data.get("created", "")),
            updated=str(data.get("updated", "")),
            source=str(data.get("source", "")),
            model=IndexedModel(**data["model"]),
            precision=str(data.get("precision", "fp32")),
            model_dimension=int(data.get("model_dimension", data["dimension"])),
            dimension=int(data["dimension"]),
            dims=tuple(int(d) for d in data["dims"]),
            storage=Storage(data["storage"]),
            chunking=dict(data["chunking"]),
            ann=DenseSettings.from_dict(data["ann"]),
            versions=dict(data.get("versions") or {}),
            generation=int(data["generation"]),
            generation_dir=str(data["generation_dir"]),
            segments=tuple(SegmentEntry(**segment) for segment in data["segments"]),
            bm25=bool(data.get("bm25")),
            counts=IndexCounts(**data.get("counts", {})),
            query_model=QueryModelPointer.from_dict(data["query_model"]) if data.get("query_model") else None,
            dense_weight=float(data["dense_weight"]) if data.get("dense_weight") is not None else None,
            extra={key: value for key, value in data.items() if key not in known},
        )

    @classmethod
    def read(cls, root: Path) -> IndexManifest:
        """The manifest of the index at ``root``, or an :class:`IndexNotFoundError` saying why not."""
        if not root.exists():
            raise IndexNotFoundError(
                f"{root}: no such index directory (build one with `fieldtune index`)"
            )
        path = root / INDEX_MANIFEST
        if not path.is_file():
            raise IndexNotFoundError(
                f"{root}: not a fieldtune index (no {INDEX_MANIFEST}); build one with `fieldtune index`"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise IndexNotFoundError(f"{path}: unreadable manifest ({error})") from error
        if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
            found = data.get("format") if isinstance(data, dict) else None
            raise IndexNotFoundError(
                f"{path}: index format {found!r}, this fieldtune reads {INDEX_FORMAT}"
            )
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as error:
            raise IndexNotFoundError(f"{path}: malformed manifest ({error!r})") from error

    def write(self, root: Path) -> None:
        """Replace ``root/index.json`` atomically (readers see the old file or the new one)."""
        write_json(root / INDEX_MANIFEST, self.to_dict())

    def query_model_dir(self, root: Path) -> Path | None:
        """The query encoder searches use, if ``fieldtune adapt`` swapped one in (else the index's model)."""
        pointer = self.query_model
        return None if pointer is None or pointer.path is None else root / pointer.path

    def referenced(self) -> set[str]:
        """Paths (relative to the root) this generation needs: segments, generation, backend files."""
        names = {segment.name for segment in self.segments} | {self.generation_dir}
        if self.ann.file:
            names.add(self.ann.file)
        return names
