"""The sentence-transformers encoder backend: any model sentence-transformers loads, in fp32 or bf16.

The catch-all backend (``handles`` accepts every model): registered last in
:data:`fieldtune.encoders.ENCODER_BACKENDS`, so an ONNX export is claimed by
its own backend first. Query and document prompts saved with the model are
applied by sentence-transformers' own ``encode_query`` / ``encode_document``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from fieldtune.models import ModelRef, embedding_dimension, load_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class SentenceTransformersBackend:
    """A loaded :class:`~sentence_transformers.SentenceTransformer` behind the backend methods."""

    def __init__(self, model: SentenceTransformer) -> None:
        self.model = model

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def get_embedding_dimension(self) -> int:
        return embedding_dimension(self.model)

    def encode_query(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        return self._encode(self.model.encode_query, texts, batch_size, show_progress)

    def encode_document(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        return self._encode(self.model.encode_document, texts, batch_size, show_progress)

    @staticmethod
    def _encode(method: Any, texts: list[str], batch_size: int, show_progress: bool) -> np.ndarray:
        vectors = method(
            texts, batch_size=batch_size, show_progress_bar=show_progress,
            convert_to_numpy=True, normalize_embeddings=False,
        )
        return np.asarray(vectors)


def handles(ref: ModelRef) -> bool:
    """Every model: this is the backend used when no other one claims the model."""
    return True


def load(ref: ModelRef, precision: str) -> SentenceTransformersBackend:
    """Load ``ref`` on the best device, with bf16 weights when ``precision`` is ``"bf16"``."""
    kwargs: dict[str, Any] = {}
    if precision == "bf16":
        import torch

        kwargs["model_kwargs"] = {"dtype": torch.bfloat16}
    return SentenceTransformersBackend(load_model(ref.spec, **kwargs))
