"""What the two compiled-graph backends (ONNX Runtime, OpenVINO) share: the record, the tokenizer, length batching.

An exported graph already pools, normalises and applies any final linear map
(see :mod:`fieldtune.export`), so such a backend only tokenises, batches by
length and runs its session: subclasses say how one batch is run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from fieldtune.models import REPAIR, DamagedModelError, check_model_files
from fieldtune.onnx_layout import ONNX_RECORD


class GraphModel:
    """An exported model (record + tokenizer files) behind the encoder-backend methods."""

    def __init__(self, path: str | Path) -> None:
        from transformers import AutoTokenizer

        self.path = Path(path)
        check_model_files(self.path)  # the record and tokenizer files: a truncated one is named
        self.record = json.loads((self.path / ONNX_RECORD).read_text(encoding="utf-8"))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        except (OSError, ValueError) as error:
            raise DamagedModelError(f"{self.path}: the tokenizer could not be loaded ({error}); {REPAIR}") from error
        self.max_seq_length = int(self.record["max_seq_length"])
        self.prompts = dict(self.record.get("prompts") or {})

    def get_embedding_dimension(self) -> int:
        return int(self.record["dimension"])

    def encode_query(self, texts: list[str], *, batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.prompts.get("query", ""), batch_size, show_progress)

    def encode_document(self, texts: list[str], *, batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.prompts.get("document", ""), batch_size, show_progress)

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        """The embeddings of one tokenised batch (int64 ``input_ids``, ``attention_mask``, ``token_type_ids``)."""
        raise NotImplementedError

    def feed(self, texts: list[str], *, pad_to_multiple_of: int | None = None) -> dict[str, Any]:
        """One batch as the graph's int64 inputs (``pad_to_multiple_of``: fewer shapes for the runtime to prepare)."""
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np",
            pad_to_multiple_of=pad_to_multiple_of,
        )
        return {
            "input_ids": tokens["input_ids"].astype(np.int64),
            "attention_mask": tokens["attention_mask"].astype(np.int64),
            "token_type_ids": tokens.get("token_type_ids", np.zeros_like(tokens["input_ids"])).astype(np.int64),
        }

    def _encode(self, texts: list[str], prompt: str, batch_size: int, show_progress: bool) -> np.ndarray:
        # Batches of similar length waste less work on padding (sentence-transformers does the same).
        prompted = [prompt + text for text in texts]
        order = np.argsort([-len(text) for text in prompted], kind="stable")
        out = np.zeros((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not show_progress):
            rows = order[start : start + batch_size]
            out[rows] = self.run_batch(self.feed([prompted[i] for i in rows]))
        return out
