"""The OpenVINO encoder backend: runs an int8 model made for this CPU by :mod:`fieldtune.quantize`.

The directory holds an export's record and tokenizer (as an ONNX export does)
and ``openvino_model.xml`` / ``.bin``: the graph with int8 weights and
activations, which runs on VNNI (AVX-512 or AVX2) integer instructions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fieldtune.encoders.graph_model import GraphModel
from fieldtune.errors import require_extra
from fieldtune.models import REPAIR, DamagedModelError, ModelRef
from fieldtune.onnx_layout import OPENVINO_FILE, is_openvino_model


class OpenVinoModel(GraphModel):
    """An int8 OpenVINO model compiled for the CPU with ``threads`` inference threads."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        ov = require_extra("openvino", "fast")
        super().__init__(path)
        config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        graph = self.path / OPENVINO_FILE
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(graph)), "CPU", config)
        except RuntimeError as error:  # OpenVINO reports every load failure as RuntimeError
            raise DamagedModelError(f"{graph}: damaged OpenVINO model ({error}); {REPAIR}") from error
        self.request = self.compiled.create_infer_request()
        self.output = self.compiled.output(0)

    @property
    def threads(self) -> int:
        return int(self.compiled.get_property("INFERENCE_NUM_THREADS"))

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return np.array(self.request.infer(feed)[self.output], dtype=np.float32)


def handles(ref: ModelRef) -> bool:
    """A directory made by :mod:`fieldtune.quantize` (or copied from one)."""
    return is_openvino_model(ref.location)


def load(ref: ModelRef, precision: str) -> OpenVinoModel:
    """Open the model (``precision`` is ignored: its numbers were fixed when it was made)."""
    return OpenVinoModel(ref.location)
