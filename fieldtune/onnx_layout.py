"""What makes a directory a fieldtune ONNX export: its two file names and the check for them.

Its own tiny module because three others need it and must not need each other:
:mod:`fieldtune.export` writes the layout, :mod:`fieldtune.encoders.onnx` runs
it, and :mod:`fieldtune.models` recognises it (as a model directory that
encodes but cannot be trained).
"""

from __future__ import annotations

from pathlib import Path

#: The export's record: prompts, maximum sequence length, dimension, the model it came from.
ONNX_RECORD = "fieldtune-onnx.json"
#: The graph: tokens -> pooled, normalised sentence embedding.
ONNX_FILE = "model.onnx"


def is_onnx_export(path: str | Path) -> bool:
    directory = Path(path)
    return (directory / ONNX_RECORD).is_file() and (directory / ONNX_FILE).is_file()


#: An int8 OpenVINO model made by :mod:`fieldtune.quantize` (the record as above, this graph, weights in ``.bin``).
OPENVINO_FILE = "openvino_model.xml"


def is_openvino_model(path: str | Path) -> bool:
    directory = Path(path)
    return (directory / ONNX_RECORD).is_file() and (directory / OPENVINO_FILE).is_file()
