"""Encoding texts with an embedding model: prompts, precision, and a disk cache.

Every consumer (eval, index, search) encodes through :class:`Encoder` so that
query/document prompts saved with a model are always applied, and corpus
embeddings computed once for a (model, texts, settings) triple are reused. The
model itself runs in an encoder backend (:mod:`fieldtune.encoders`:
sentence-transformers, ONNX), picked for the model by the backend registry.
"""

from __future__ import annotations

import logging
import os
import time
from enum import Enum
from pathlib import Path

import numpy as np

from fieldtune.embedding_cache import EmbeddingCache
from fieldtune.encoders import EncoderBackend, backend_for, load_backend
from fieldtune.encoders import ray as ray_backend
from fieldtune.hardware import supports_bf16, threads_for_idle_cores, torch_threads
from fieldtune.hashing import path_sha256, text_sha256
from fieldtune.model_record import NON_WEIGHT_FILES, ModelRecord
from fieldtune.models import resolve_model
from fieldtune.quantize import int8_model, int8_supported, load_int8
from fieldtune.rotation_record import UnrotatedSource, unrotated_source
from fieldtune.training.query_model import shared_document_encoder

logger = logging.getLogger("fieldtune.encoding")

CACHE_ENV = "FIELDTUNE_CACHE"


class Precision(str, Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    #: static int8 on OpenVINO, made for this CPU and kept only where it agrees with fp32 (:mod:`fieldtune.quantize`)
    INT8 = "int8"
    #: bf16 where the hardware computes it natively (1.9x fp32's speed, cosine 0.9999); else int8 for
    #: corpus-sized work where OpenVINO is installed (2.5x, cosine 0.993); else fp32.
    AUTO = "auto"

    def resolved(self) -> Precision:
        return auto_precision() if self is Precision.AUTO else self


#: Below this many texts, ``auto`` does not make an int8 model it lacks: making one costs about a
#: minute on 2 cores, what fp32 spends on about a thousand passages. A model made once is reused.
INT8_MIN_TEXTS = 2000
#: an encode of at least this many texts samples the idle cores for its threads and logs its speed
LARGE_ENCODE = 256


def auto_precision() -> Precision:
    """bf16 where the device computes it natively, else int8 where it can be made here, else fp32.

    ``int8`` here means "int8 if this model's int8 version agrees with fp32 and
    ran faster than it here": the :class:`Encoder` falls back to fp32 otherwise.
    Which int8 depends on the CPU (:func:`fieldtune.quantize.int8_recipe`).
    """
    if supports_bf16():
        return Precision.BF16
    return Precision.INT8 if int8_supported() else Precision.FP32


def cache_dir() -> Path:
    xdg_cache = os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")
    root = os.environ.get(CACHE_ENV) or os.path.join(xdg_cache, "fieldtune")
    return Path(root)


def document_text(title: str, text: str) -> str:
    """How a titled document is shown to a model (the BEIR convention)."""
    return f"{title} {text}".strip() if title else text


def normalize(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def truncate(vectors: np.ndarray, dim: int) -> np.ndarray:
    """Matryoshka truncation: keep the first ``dim`` components and renormalise."""
    return normalize(vectors[:, :dim])


class Encoder:
    """A loaded model plus the settings that change its embeddings.

    ``backend`` names an encoder backend (see :mod:`fieldtune.encoders`); by
    default the registry picks the one for the model (an ONNX export runs on
    onnxruntime, anything else on sentence-transformers).
    """

    def __init__(
        self,
        model_spec: str,
        *,
        precision: Precision | str = Precision.AUTO,
        batch_size: int = 32,
        use_cache: bool = True,
        show_progress: bool = True,
        backend: str | None = None,
    ) -> None:
        self.spec = model_spec
        self.ref = resolve_model(model_spec)
        self.backend_name = backend_for(self.ref, backend)
        if backend is None:  # inside `build --ray` (encoders.ray.corpus_on_ray) documents go to Ray
            self.backend_name = ray_backend.routed_backend(self.backend_name)
        self.requested = Precision(precision)
        self.precision = self.requested.resolved()
        # auto's int8 is settled at the first encode, by its size (see INT8_MIN_TEXTS)
        self._int8_if_large = Precision(precision) is Precision.AUTO and self.precision is Precision.INT8
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.show_progress = show_progress
        self._model: EncoderBackend | None = None
        self._fingerprint: str | None = None
        self._weights: str | None = None
        self._documents: Encoder | None = None
        #: a rotated build model's unrotated weights: their cached embeddings, rotated, are this model's
        self._unrotated: UnrotatedSource | None = None
        #: whether the backend leaves the rotation out (an int8 rotated model runs its unrotated weights' graph)
        self._rotates = False

    @property
    def model(self) -> EncoderBackend:
        """The loaded backend (loaded on first use: loading a model takes seconds)."""
        if self._model is None:
            self._settle_auto(0)  # loaded before any encode or prepare (for its dimension, say): fp32
            if self.precision is Precision.INT8:
                self._model = self._int8_backend()
            if self._model is None:
                self._model = load_backend(self.ref, self.precision.value, self.backend_name)
                if self.precision is Precision.FP32 and self._plain_local():  # rotated in fp32 by the model itself
                    self._unrotated = unrotated_source(Path(self.ref.location))
        return self._model

    def _plain_local(self) -> bool:
        return self.backend_name == "sentence-transformers" and self.ref.kind != "hub"

    def weights_key(self) -> str:
        """Identifies the weights (a hub id, or a hash of the model's files): what its int8 model is made for."""
        return self._weights_key()

    def _weights_key(self) -> str:
        if self._weights is None:
            # Files a build writes beside the weights (the card, the gate's record) change no embedding.
            # Only a build's own model leaves them out, so caches of base models keep their keys.
            location = Path(self.ref.location)
            notes = [location / name for name in NON_WEIGHT_FILES] if ModelRecord.exists(location) else []
            self._weights = self.ref.location if self.ref.kind == "hub" else path_sha256(location, notes)
        return self._weights

    def _int8_backend(self) -> EncoderBackend | None:
        """The int8 model, or None (precision set back to fp32) where there is none for this model.

        None for a model that is not a plain sentence-transformers one (an export
        fixes its own numbers) and for a rejected one. A query-side model's int8
        model is its query route's (its documents are its base's, in int8 too).
        """
        plain = self.backend_name == "sentence-transformers"
        query_side = plain and self.ref.kind != "hub" and shared_document_encoder(self.ref.location) is not None
        location = None
        auto = self.requested is Precision.AUTO  # auto takes int8 only where it is faster; --precision int8 always
        unrotated = unrotated_source(Path(self.ref.location)) if self._plain_local() and not query_side else None
        if unrotated is not None:
            # the unrotated weights' own int8 model (made when they were encoded), then the exact rotation
            location = int8_model(self.spec, unrotated.weights_key, cache_dir(), drop_rotation=True,
                                  require_faster=auto)
            if location is not None:
                self._unrotated, self._rotates = unrotated, True
        elif plain:
            location = int8_model(self.spec, self._weights_key(), cache_dir(), route="query" if query_side else None,
                                  require_faster=auto)
        if location is None:
            self.precision = Precision.FP32
            return None
        return load_int8(location, threads=threads_for_idle_cores())

    def rotate(self, vectors: np.ndarray) -> np.ndarray:
        """The backend's unit-norm output as this model's embeddings: times the rotation its int8 graph leaves out."""
        return vectors @ self._unrotated.rotation if self._rotates and self._unrotated is not None else vectors

    def _unrotated_cache(self, kind: str) -> EmbeddingCache | None:
        """The unrotated weights' cache (their fingerprint at this precision), for a rotated build model.

        In int8 this model runs their graph; in fp32 its own output equals theirs times the rotation
        to float rounding (about 1e-7).
        """
        _ = self.model  # settles the precision and finds the unrotated weights
        if self._unrotated is None:
            return None
        settings = f"{self._unrotated.weights_key}|{self.precision.value}|{self.model.max_seq_length}"
        return EmbeddingCache(cache_dir() / "embeddings", text_sha256(settings)[:24], kind)

    def _settle_auto(self, count: int) -> None:
        """auto on an int8 CPU: int8 for a job of at least INT8_MIN_TEXTS texts, else fp32.

        Decided by the job's size alone (not by whether an int8 model happens to exist),
        so the same command gives the same numbers on a machine whatever ran before.
        """
        if not self._int8_if_large:
            return
        self._int8_if_large = False
        if self._model is None and count < INT8_MIN_TEXTS:
            self.precision = Precision.FP32

    def prepare(self, count: int) -> None:
        """Settle the precision for encoding about ``count`` texts and load the model (making an int8 one if due).

        For callers that want the model ready before a timed or large encode (a
        warm-up on a few texts would otherwise settle ``auto`` for a small job).
        """
        self._settle_auto(count)
        _ = self.model
        if self.document_encoder() is not self:
            self.document_encoder().prepare(count)

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def fingerprint(self) -> str:
        """Identifies the weights and settings, so cached embeddings are never stale."""
        if self._fingerprint is None:
            max_seq_length = self.model.max_seq_length  # loads first: an int8 model may fall back to fp32
            settings = f"{self._weights_key()}|{self.precision.value}|{max_seq_length}"
            self._fingerprint = text_sha256(settings)[:24]
        return self._fingerprint

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        method = self.model.encode_query if kind == "query" else self.model.encode_document
        # Large batches only: sampling the machine's load costs half a second.
        large = len(texts) >= LARGE_ENCODE
        threads = threads_for_idle_cores() if large else None
        started = time.perf_counter()
        with torch_threads(threads):
            vectors = method(texts, batch_size=self.batch_size, show_progress=self.show_progress)
        if large:  # where a build's time goes (benchmarks/build_time.py reads these lines)
            seconds = time.perf_counter() - started
            logger.info("encoded %d %s texts in %.1fs (%.0f/s, %s)", len(texts), kind, seconds,
                        len(texts) / max(seconds, 1e-9), self.precision.value)
        return self.rotate(normalize(np.asarray(vectors, dtype=np.float32)))

    def document_encoder(self) -> Encoder:
        """Who encodes this model's documents: itself, or its base for a query-side model.

        A query-adapted model's document route is its base, unchanged (checked by the
        fingerprint its record holds), so its documents are the base's embeddings:
        encoded, and cached, once for both; an evaluation or index of the base is reused.
        """
        if self._documents is None:
            self._documents = self
            base = None if self.ref.kind == "hub" else shared_document_encoder(self.ref.location)
            if base is not None:
                # the precision this model settled on, so its queries and documents agree (not settled yet:
                # what was asked, which the base settles for its own job, as this model would)
                precision = self.requested if self._int8_if_large else self.precision
                self._documents = Encoder(base, precision=precision, batch_size=self.batch_size,
                                          use_cache=self.use_cache, show_progress=self.show_progress)
                logger.info("%s: documents are encoded by its base %s (same document route)", self.spec, base)
        return self._documents

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray:
        """Unit-norm float32 embeddings of ``texts``; ``kind`` is ``"query"`` or ``"document"``."""
        if kind not in ("query", "document"):
            raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
        self._settle_auto(len(texts))
        if kind == "document" and self.document_encoder() is not self:
            return self.document_encoder().encode(texts, kind=kind)
        if not self.use_cache:
            return self._encode(texts, kind)
        cache = EmbeddingCache(cache_dir() / "embeddings", self.fingerprint(), kind)
        cached = cache.exact(texts)
        if cached is not None:
            logger.info("reusing %d cached %s embeddings from %s", len(texts), kind, cache.path(texts))
            return cached
        # A part of texts encoded before (the gate's pool of the corpus mining encoded) is read, not re-encoded.
        gathered = cache.gather(texts)
        vectors, missing = gathered.vectors, gathered.missing
        unrotated = self._unrotated_cache(kind) if missing else None
        if unrotated is not None:  # what the unrotated weights encoded (a kept base's corpus, say), rotated
            found = unrotated.gather([texts[i] for i in missing])
            if found.vectors is not None:
                if vectors is None:
                    vectors = np.zeros((len(texts), found.vectors.shape[1]), dtype=np.float32)
                absent = set(found.missing)
                hits = [row for i, row in enumerate(missing) if i not in absent]
                vectors[hits] = np.delete(found.vectors, found.missing, axis=0) @ self._unrotated.rotation
                missing = [missing[i] for i in found.missing]
        if vectors is None:
            vectors = self._encode(texts, kind)
        else:
            logger.info("reusing %d of %d %s embeddings cached by earlier encodes; encoding %d",
                        len(texts) - len(missing), len(texts), kind, len(missing))
            if missing:
                vectors[missing] = self._encode([texts[i] for i in missing], kind)
        cache.store(texts, vectors)
        return vectors
