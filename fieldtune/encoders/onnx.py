"""The ONNX encoder backend: runs a directory written by ``fieldtune export --onnx`` on onnxruntime.

The export's graph already pools, normalises and applies any final linear map
(see :mod:`fieldtune.export`), so this backend only tokenises, batches by
length and runs the session. Its numbers are fixed at export time (fp32 or
int8): the precision asked of the encoder is ignored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from fieldtune.errors import require_extra
from fieldtune.models import REPAIR, DamagedModelError, ModelRef, check_model_files
from fieldtune.onnx_layout import ONNX_FILE, ONNX_RECORD, is_onnx_export


class OnnxModel:
    """An exported model behind the encoder-backend methods."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        ort = require_extra("onnxruntime", "onnx")
        from transformers import AutoTokenizer

        self.path = Path(path)
        check_model_files(self.path)  # the record and tokenizer files: a truncated one is named
        self.record = json.loads((self.path / ONNX_RECORD).read_text(encoding="utf-8"))
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        except (OSError, ValueError) as error:
            raise DamagedModelError(f"{self.path}: the tokenizer could not be loaded ({error}); {REPAIR}") from error
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = self.path / ONNX_FILE
        try:
            self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) share no narrower base
            raise DamagedModelError(f"{graph}: damaged ONNX graph ({error}); {REPAIR}") from error
        self.max_seq_length = int(self.record["max_seq_length"])
        self.prompts = dict(self.record.get("prompts") or {})

    def get_embedding_dimension(self) -> int:
        return int(self.record["dimension"])

    def encode_query(self, texts: list[str], *, batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.prompts.get("query", ""), batch_size, show_progress)

    def encode_document(self, texts: list[str], *, batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        return self._encode(texts, self.prompts.get("document", ""), batch_size, show_progress)

    def _encode(self, texts: list[str], prompt: str, batch_size: int, show_progress: bool) -> np.ndarray:
        # Batches of similar length waste less work on padding (sentence-transformers does the same).
        prompted = [prompt + text for text in texts]
        order = np.argsort([-len(text) for text in prompted], kind="stable")
        out = np.zeros((len(texts), self.get_embedding_dimension()), dtype=np.float32)
        for start in tqdm(range(0, len(texts), batch_size), desc="Batches", disable=not show_progress):
            rows = order[start : start + batch_size]
            tokens = self.tokenizer(
                [prompted[i] for i in rows], padding=True, truncation=True,
                max_length=self.max_seq_length, return_tensors="np",
            )
            feed = {
                "input_ids": tokens["input_ids"].astype(np.int64),
                "attention_mask": tokens["attention_mask"].astype(np.int64),
                "token_type_ids": tokens.get("token_type_ids", np.zeros_like(tokens["input_ids"])).astype(np.int64),
            }
            out[rows] = self.session.run(["embedding"], feed)[0]
        return out


def handles(ref: ModelRef) -> bool:
    """A directory that holds an export's record and graph."""
    return is_onnx_export(ref.location)


def load(ref: ModelRef, precision: str) -> OnnxModel:
    """Open the export (``precision`` is ignored: the export fixed fp32 or int8)."""
    return OnnxModel(ref.location)
