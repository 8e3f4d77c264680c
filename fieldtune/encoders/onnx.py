"""The ONNX encoder backend: runs a directory written by ``fieldtune export --onnx`` on onnxruntime.

Its numbers are fixed at export time (fp32 or int8): the precision asked of
the encoder is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fieldtune.encoders.graph_model import GraphModel
from fieldtune.errors import require_extra
from fieldtune.models import REPAIR, DamagedModelError, ModelRef
from fieldtune.onnx_layout import ONNX_FILE, is_onnx_export


class OnnxModel(GraphModel):
    """An exported model run by an onnxruntime session."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        ort = require_extra("onnxruntime", "onnx")
        super().__init__(path)
        options = ort.SessionOptions()
        self.threads = threads or os.cpu_count() or 1
        options.intra_op_num_threads = self.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = self.path / ONNX_FILE
        try:
            self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime's errors (InvalidProtobuf, Fail, ...) share no narrower base
            raise DamagedModelError(f"{graph}: damaged ONNX graph ({error}); {REPAIR}") from error

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["embedding"], feed)[0]


def handles(ref: ModelRef) -> bool:
    """A directory that holds an export's record and graph."""
    return is_onnx_export(ref.location)


def load(ref: ModelRef, precision: str) -> OnnxModel:
    """Open the export (``precision`` is ignored: the export fixed fp32 or int8)."""
    return OnnxModel(ref.location)
