"""Query encoders swapped into an index by ``fieldtune adapt``: where they live, the pointer, the check.

An adapted query encoder is a query-side model (:mod:`fieldtune.training.query_model`)
written under ``<index>/query-models/<n>/``; the manifest's ``query_model``
pointer (:class:`~fieldtune.search.manifest.QueryModelPointer`) names the one
searches use. Swapping it in, or rolling it back, replaces ``index.json`` in
one atomic write under the writers' lock, so a search sees the old encoder or
the new one; the segments, and so every stored document vector, are never
touched. An :class:`~fieldtune.search.Index` notices the new pointer on its
next search (``index.json`` changed) and loads the encoder it names.

A query encoder is accepted only if its document route has the fingerprint of
the model the index was encoded with: its query vectors are trained to be
compared with exactly those document vectors.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fieldtune.encoding import Encoder
from fieldtune.errors import FieldtuneError
from fieldtune.models import load_model
from fieldtune.search.manifest import IndexManifest, QueryModelPointer
from fieldtune.search.state import file_lock
from fieldtune.training.query_model import document_fingerprint

#: Folder of an index (relative to its root) that holds the adapted query encoders.
QUERY_MODELS = "query-models"


class QueryModelMismatchError(FieldtuneError, ValueError):
    """A query encoder whose document route is not the model the index's vectors came from."""


class NothingToRollBackError(FieldtuneError, ValueError):
    """``adapt --rollback`` with no earlier query encoder to go back to."""


def index_document_fingerprint(manifest: IndexManifest) -> str:
    """The document fingerprint of the model the index was encoded with (loads it on the CPU, ~1 s)."""
    return document_fingerprint(load_model(manifest.model.load_spec, device="cpu"))


def check_query_model(model_dir: Path, expected: str, *, index: Path) -> None:
    """Refuse ``model_dir`` unless its document route's fingerprint is ``expected`` (the index's model's)."""
    if not model_dir.is_dir():
        raise QueryModelMismatchError(f"{model_dir}: the query encoder the index at {index} points to is missing; "
                                      "run `fieldtune adapt --index DIR --rollback` or adapt again")
    actual = document_fingerprint(load_model(str(model_dir), device="cpu"))
    if actual != expected:
        raise QueryModelMismatchError(
            f"{model_dir}: its document route (fingerprint {actual[:12]}) is not the model the index at {index} "
            f"was encoded with ({expected[:12]}); its query vectors would not match the stored document vectors. "
            "Adapt a query encoder from this index with `fieldtune adapt`"
        )


def query_encoder(root: Path, manifest: IndexManifest) -> Encoder:
    """The encoder for queries: the adapted one the pointer names (checked), else the index's model."""
    model_dir = manifest.query_model_dir(root)
    spec = manifest.model.load_spec if model_dir is None else str(model_dir)
    if model_dir is not None and manifest.query_model is not None:
        check_query_model(model_dir, manifest.query_model.document_fingerprint, index=root)
    return Encoder(spec, precision=manifest.precision, use_cache=False, show_progress=False)


def next_model_dir(root: Path) -> Path:
    """``query-models/<n>`` with ``n`` one above every folder there (names are never reused)."""
    folder = root / QUERY_MODELS
    numbers = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return folder / f"{max(numbers, default=0) + 1:06d}"


def swap_in(root: Path, model_dir: Path, fingerprint: str) -> IndexManifest:
    """Point the index at ``model_dir`` (checked first); the pointer it replaces goes onto the history."""
    check_query_model(model_dir, fingerprint, index=root)
    relative = model_dir.resolve().relative_to(root.resolve()).as_posix()
    with file_lock(root):
        manifest = IndexManifest.read(root)
        old = manifest.query_model or QueryModelPointer()
        pointer = QueryModelPointer(relative, (*old.history, old.path), fingerprint)
        return _write(root, manifest, pointer)


def roll_back(root: Path) -> IndexManifest:
    """Point the index back at the query encoder it used before the last swap (atomically)."""
    with file_lock(root):
        manifest = IndexManifest.read(root)
        old = manifest.query_model
        if old is None or not old.history:
            now = "its own model" if old is None or old.path is None else old.path
            raise NothingToRollBackError(f"{root}: no earlier query encoder to roll back to (searches use {now})")
        pointer = dataclasses.replace(old, path=old.history[-1], history=old.history[:-1])
        return _write(root, manifest, pointer)


def _write(root: Path, manifest: IndexManifest, pointer: QueryModelPointer) -> IndexManifest:
    new = dataclasses.replace(manifest, query_model=pointer)
    new.write(root)
    return new
