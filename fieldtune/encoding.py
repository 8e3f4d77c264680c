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
from enum import Enum
from pathlib import Path

import numpy as np

from fieldtune.encoders import EncoderBackend, backend_for, load_backend
from fieldtune.hardware import supports_bf16, threads_for_idle_cores, torch_threads
from fieldtune.hashing import path_sha256, text_sha256, texts_sha256
from fieldtune.model_record import ModelRecord
from fieldtune.models import resolve_model
from fieldtune.training.query_model import shared_document_encoder
from fieldtune.workdir import atomic_write

logger = logging.getLogger("fieldtune.encoding")

CACHE_ENV = "FIELDTUNE_CACHE"


class Precision(str, Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    #: bf16 where the hardware computes it natively (1.9x fp32's speed here, cosine 0.9999), else fp32.
    AUTO = "auto"

    def resolved(self) -> Precision:
        return auto_precision() if self is Precision.AUTO else self


def auto_precision() -> Precision:
    """bf16 where the device the encoder runs on computes it natively, else fp32."""
    return Precision.BF16 if supports_bf16() else Precision.FP32


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


#: files beside a model's weights that do not change its embeddings (left out of the cache key)
NON_WEIGHT_FILES = ("README.md", "gate.json")


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
        self.precision = Precision(precision).resolved()
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.show_progress = show_progress
        self._model: EncoderBackend | None = None
        self._fingerprint: str | None = None
        self._documents: Encoder | None = None

    @property
    def model(self) -> EncoderBackend:
        """The loaded backend (loaded on first use: loading a model takes seconds)."""
        if self._model is None:
            self._model = load_backend(self.ref, self.precision.value, self.backend_name)
        return self._model

    @property
    def dimension(self) -> int:
        return self.model.get_embedding_dimension()

    def fingerprint(self) -> str:
        """Identifies the weights and settings, so cached embeddings are never stale."""
        if self._fingerprint is None:
            # Files a build writes beside the weights (the card, the gate's record) change no embedding.
            # Only a build's own model leaves them out, so caches of base models keep their keys.
            location = Path(self.ref.location)
            built = ModelRecord.exists(location)
            notes = [location / name for name in NON_WEIGHT_FILES] if built else []
            weights = self.ref.location if self.ref.kind == "hub" else path_sha256(location, notes)
            settings = f"{weights}|{self.precision.value}|{self.model.max_seq_length}"
            self._fingerprint = text_sha256(settings)[:24]
        return self._fingerprint

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        method = self.model.encode_query if kind == "query" else self.model.encode_document
        # Large batches only: sampling the machine's load costs half a second.
        threads = threads_for_idle_cores() if len(texts) >= 256 else None
        with torch_threads(threads):
            vectors = method(texts, batch_size=self.batch_size, show_progress=self.show_progress)
        return normalize(np.asarray(vectors, dtype=np.float32))

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
                self._documents = Encoder(base, precision=self.precision, batch_size=self.batch_size,
                                          use_cache=self.use_cache, show_progress=self.show_progress)
                logger.info("%s: documents are encoded by its base %s (same document route)", self.spec, base)
        return self._documents

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray:
        """Unit-norm float32 embeddings of ``texts``; ``kind`` is ``"query"`` or ``"document"``."""
        if kind not in ("query", "document"):
            raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
        if kind == "document" and self.document_encoder() is not self:
            return self.document_encoder().encode(texts, kind=kind)
        if not self.use_cache:
            return self._encode(texts, kind)
        path = cache_dir() / "embeddings" / f"{self.fingerprint()}-{kind}-{texts_sha256(texts)[:24]}.npy"
        if path.exists():
            try:
                cached = np.load(path)
                if cached.shape[0] == len(texts):
                    logger.info("reusing %d cached %s embeddings from %s", len(texts), kind, path)
                    return cached
            except (OSError, ValueError):
                logger.warning("ignoring unreadable cache file %s", path)
        vectors = self._encode(texts, kind)
        try:
            with atomic_write(path, "wb") as handle:
                np.save(handle, vectors)
        except OSError as error:  # a read-only cache must not fail the evaluation
            logger.warning("could not write embedding cache %s: %s", path, error)
        return vectors
