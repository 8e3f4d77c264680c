"""Encoding texts with a sentence-transformers model: prompts, precision, and a disk cache.

Every consumer (eval, index, search) encodes through :class:`Encoder` so that
query/document prompts saved with a model are always applied, and corpus
embeddings computed once for a (model, texts, settings) triple are reused.
"""

from __future__ import annotations

import hashlib
import logging
import os
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fieldtune.workdir import atomic_write, path_sha256

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger("fieldtune.encoding")

CACHE_ENV = "FIELDTUNE_CACHE"


class Precision(str, Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    #: bf16 where the hardware computes it natively (1.9x fp32's speed here, cosine 0.9999), else fp32.
    AUTO = "auto"

    def resolved(self) -> Precision:
        return auto_precision() if self is Precision.AUTO else self


def supports_bf16() -> bool:
    """True on CUDA devices with bf16, or CPUs with native bf16 (AVX-512 BF16 / AMX)."""
    import torch

    if torch.cuda.is_available():
        return bool(torch.cuda.is_bf16_supported())
    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    return bool(check and check())


def auto_precision() -> Precision:
    return Precision.BF16 if supports_bf16() else Precision.FP32


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV) or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"), "fieldtune")
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
    """A loaded model plus the settings that change its embeddings."""

    def __init__(
        self,
        model_spec: str,
        *,
        precision: Precision | str = Precision.AUTO,
        batch_size: int = 32,
        use_cache: bool = True,
        show_progress: bool = True,
    ) -> None:
        from fieldtune.models import resolve_model

        self.spec = model_spec
        self.ref = resolve_model(model_spec)
        self.precision = Precision(precision).resolved()
        self.batch_size = batch_size
        self.use_cache = use_cache
        self.show_progress = show_progress
        self._model: SentenceTransformer | None = None
        self._fingerprint: str | None = None

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            from fieldtune.export import OnnxModel, is_onnx_export
            from fieldtune.models import load_model

            if is_onnx_export(self.ref.location):
                self._model = OnnxModel(self.ref.location)  # type: ignore[assignment]
                return self._model

            kwargs = {}
            if self.precision is Precision.BF16:
                import torch

                kwargs["model_kwargs"] = {"dtype": torch.bfloat16}
            self._model = load_model(self.spec, **kwargs)
        return self._model

    @property
    def dimension(self) -> int:
        from fieldtune.models import embedding_dimension

        return embedding_dimension(self.model)

    def fingerprint(self) -> str:
        """Identifies the weights and settings, so cached embeddings are never stale."""
        if self._fingerprint is None:
            weights = self.ref.location if self.ref.kind == "hub" else path_sha256(self.ref.location)
            settings = f"{weights}|{self.precision.value}|{self.model.max_seq_length}"
            self._fingerprint = hashlib.sha256(settings.encode()).hexdigest()[:24]
        return self._fingerprint

    def _encode(self, texts: list[str], kind: str) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        method = self.model.encode_query if kind == "query" else self.model.encode_document
        vectors = method(
            texts, batch_size=self.batch_size, show_progress_bar=self.show_progress,
            convert_to_numpy=True, normalize_embeddings=False,
        )
        return normalize(np.asarray(vectors, dtype=np.float32))

    def encode(self, texts: list[str], *, kind: str) -> np.ndarray:
        """Unit-norm float32 embeddings of ``texts``; ``kind`` is ``"query"`` or ``"document"``."""
        if kind not in ("query", "document"):
            raise ValueError(f"kind must be 'query' or 'document', got {kind!r}")
        if not self.use_cache:
            return self._encode(texts, kind)
        digest = hashlib.sha256()
        for text in texts:
            digest.update(text.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
        path = cache_dir() / "embeddings" / f"{self.fingerprint()}-{kind}-{digest.hexdigest()[:24]}.npy"
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
