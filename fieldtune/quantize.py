"""Int8 models for CPUs without native bf16: made once per model and machine, checked against fp32, cached.

On an AVX2 or AVX-512 VNNI CPU without bf16, plain fp32 is the only float
path, and ONNX Runtime's dynamic int8 export gained 1.33x on Zen 3 (the CPU
issue). Static int8 (weights and activations, ranges calibrated with NNCF) run
by OpenVINO gained 2.5x here (Xeon, AVX-512 VNNI, one busy core) at a mean
cosine of 0.997 to fp32 on SciFact passages (recipe 3, below). The int8 model is made from an fp32 ONNX export of the
model, calibrated on :mod:`fieldtune.calibration`'s texts, and **kept only
when it agrees with fp32** on held-out texts (mean cosine >= 0.99, minimum >=
0.97) **and runs faster than fp32** on them (by ``MIN_SPEEDUP``, both run by
OpenVINO): on a Zen 3 (AVX2, no VNNI) the int8 model ran at 0.86x OpenVINO's
fp32 and 0.89x plain sentence-transformers on SciFact, so there ``auto`` stays
fp32. The decision is recorded beside it (``int8-check.json``) with the CPU's
features, so a rejected model is not re-made at every run.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.calibration import calibration_texts
from fieldtune.encoders.graph_model import GraphModel
from fieldtune.encoders.openvino import OpenVinoModel
from fieldtune.export import export_onnx, quantize_weights_int8
from fieldtune.hardware import cpu_features, cuda_available, describe
from fieldtune.hashing import text_sha256
from fieldtune.onnx_layout import ONNX_FILE, ONNX_RECORD, OPENVINO_FILE

logger = logging.getLogger("fieldtune.quantize")

#: Change whenever the way int8 models are made changes (the recipe is part of their cache key).
OPENVINO_RECIPE = "openvino-nncf-static-int8/3+faster"
ONNXRUNTIME_RECIPE = "onnxruntime-dynamic-int8/1"
CHECK_FILE = "int8-check.json"
MIN_MEAN_COSINE = 0.99
MIN_COSINE = 0.97
CALIBRATION_TEXTS = 64
CHECK_TEXTS = 64
#: int8 must encode the check texts at least this much faster than fp32 to be kept (timing noise stays below it)
MIN_SPEEDUP = 1.15
#: SmoothQuant's migration strength for MatMuls. NNCF's transformer default (0.95) left SciFact passages at a mean
#: cosine of 0.989 to fp32; 0.7-0.85 all gave 0.991-0.993 and 0.8 was best on the held-out docstrings (0.995).
SMOOTH_QUANT_ALPHA = 0.8


def int8_recipe() -> str:
    """How int8 models are made for this CPU.

    With int8 dot products (VNNI), static int8 on OpenVINO: 1.78x plain fp32 on a
    Xeon. Without them OpenVINO's int8 ran at 0.89x fp32 (Zen 3, AVX2 only), while
    ONNX Runtime's dynamic int8 (weights per channel, activations as they come)
    ran at 1.30x: that is the recipe there.
    """
    return OPENVINO_RECIPE if cpu_features().int8_dot_products else ONNXRUNTIME_RECIPE


def int8_supported() -> bool:
    """Whether int8 models can be made and run here: the recipe's runtime installed, and no CUDA device to prefer."""
    needs = ("openvino", "nncf") if int8_recipe() == OPENVINO_RECIPE else ("onnxruntime", "onnx")
    installed = all(importlib.util.find_spec(name) is not None for name in needs)
    return installed and not cuda_available()


def load_int8(directory: Path, *, threads: int | None = None) -> GraphModel:
    """An int8 model made here, on the runtime of its recipe."""
    if (Path(directory) / OPENVINO_FILE).is_file():
        return OpenVinoModel(directory, threads=threads)
    from fieldtune.encoders.onnx import OnnxModel

    return OnnxModel(directory, threads=threads)


def _calibration_source() -> str:
    """What the calibration texts depend on (read in microseconds; the texts themselves take a second)."""
    try:
        sympy = metadata.version("sympy")
    except metadata.PackageNotFoundError:
        sympy = "none"
    return f"python {sys.version_info.major}.{sys.version_info.minor}|sympy {sympy}"


def _texts() -> tuple[list[str], list[str]]:
    texts = calibration_texts(CALIBRATION_TEXTS + CHECK_TEXTS)
    return texts[:CALIBRATION_TEXTS], texts[CALIBRATION_TEXTS:]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One process makes a given int8 model at a time (a second one waits, then finds it made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def int8_model(spec: str, weights_key: str, root: Path, *, make: bool = True, route: str | None = None,
               drop_rotation: bool = False, require_faster: bool = False) -> Path | None:
    """The directory of ``spec``'s int8 model under ``root`` (made now if needed), or None if rejected.

    With ``make=False`` a model not made yet is None too (nothing is made).

    ``weights_key`` identifies the weights and sequence length (the encoder's fp32
    fingerprint). ``require_faster`` (``auto``'s choice) also refuses a faithful
    int8 model that was not faster than fp32 here. ``drop_rotation`` makes it from ``spec`` without the rotation
    :mod:`fieldtune.rotation` appended (``weights_key`` then names the unrotated
    weights, whose int8 model it is). A model that cannot be exported (a query-side router, say) or
    that disagrees with fp32 is recorded as rejected; its callers use fp32.
    """
    key = text_sha256(f"{weights_key}|{int8_recipe()}|{_calibration_source()}|{route or ''}")[:24]
    directory = root / "int8" / key
    if not make and not (directory / CHECK_FILE).is_file():
        return None
    with _locked(root / "int8" / f"{key}.lock"):
        if not (directory / CHECK_FILE).is_file():
            _make(spec, directory, *_texts(), route=route, drop_rotation=drop_rotation)
    verdict = json.loads((directory / CHECK_FILE).read_text(encoding="utf-8"))
    if not verdict["accepted"]:
        logger.info("%s: using fp32 (int8 rejected: %s)", spec, verdict["reason"])
        return None
    if require_faster and verdict.get("speedup", 0.0) < MIN_SPEEDUP:
        logger.info("%s: auto uses fp32 (int8 ran %sx fp32's speed on this CPU, under %sx)", spec,
                    verdict.get("speedup", "?"), MIN_SPEEDUP)
        return None
    return directory


def _make(spec: str, directory: Path, calibration: list[str], check: list[str], route: str | None,
          drop_rotation: bool = False) -> None:
    logger.info("making an int8 model of %s for this CPU (once; about a minute)", spec)
    started = time.perf_counter()
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".int8-", dir=directory.parent))
    recipe = int8_recipe()
    verdict: dict[str, object] = {"source": spec, "route": route, "recipe": recipe, "hardware": describe()}
    try:
        try:
            with warnings.catch_warnings():  # the exporter's notes on opset details are not the user's business
                warnings.simplefilter("ignore")
                export_onnx(spec, staging / "fp32", route=route, drop_rotation=drop_rotation)
            if recipe == OPENVINO_RECIPE:
                _quantize_openvino(staging, calibration)
            else:
                quantize_weights_int8(staging / "fp32" / ONNX_FILE, staging / ONNX_FILE)
            _copy_beside(staging, recipe)
            mean_cos, min_cos, speedup = _agreement(staging, check)
        except Exception as error:  # noqa: BLE001 - export/NNCF/OpenVINO failures all mean "use fp32"
            verdict.update(accepted=False, reason=f"{type(error).__name__}: {error}")
        else:
            agrees = mean_cos >= MIN_MEAN_COSINE and min_cos >= MIN_COSINE
            # "accepted": faithful, so --precision int8 may use it; auto also needs the speed-up
            verdict.update(accepted=agrees, mean_cosine=round(mean_cos, 5),
                           min_cosine=round(min_cos, 5), speedup=round(speedup, 2),
                           reason=(f"agrees with fp32 and runs {speedup:.2f}x its speed" if agrees else
                                   f"cosine to fp32 mean {mean_cos:.4f} / min {min_cos:.4f} is below "
                                   f"{MIN_MEAN_COSINE} / {MIN_COSINE}"))
        if not verdict["accepted"]:  # never used: only the verdict is kept, so it is not made again
            for entry in list(staging.iterdir()):
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        verdict["seconds"] = round(time.perf_counter() - started, 1)
        (staging / CHECK_FILE).write_text(json.dumps(verdict, indent=2), encoding="utf-8")
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("%s: int8 %s in %.0fs (%s)", spec, "kept" if verdict["accepted"] else "rejected",
                verdict["seconds"], verdict["reason"])


class _Fp32Graph(GraphModel):
    """The fp32 ONNX export run by OpenVINO: the reference the int8 model is checked against."""

    def __init__(self, path: Path) -> None:
        import openvino as ov

        super().__init__(path)
        core = ov.Core()
        # fp32 for real (OpenVINO would run an fp32 graph in bf16 on a bf16 CPU), timed like the int8 model
        self.compiled = core.compile_model(core.read_model(str(path / ONNX_FILE)), "CPU",
                                           {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})

    def run_batch(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return np.array(self.compiled(feed)[self.compiled.output(0)], dtype=np.float32)


def _activation_matmuls(model: Any) -> list[str]:
    """The MatMuls of two activations (attention's query x key and softmax x value), kept in fp32.

    Softmax probabilities and raw attention logits lose the most to 8 bits, and these products are a
    small share of the work: keeping them in fp32 raised SciFact's mean cosine to fp32 from 0.992 to
    0.997 (the CPU issue's bar is 0.99) at no measurable speed cost. Found by structure, not by name,
    so any exported transformer gets the same treatment.
    """

    def from_weights(port: Any) -> bool:
        node = port.get_source_output().get_node()
        while node.get_type_name() in ("Convert", "Transpose", "Reshape"):
            node = node.input(0).get_source_output().get_node()
        return node.get_type_name() == "Constant"

    return [op.get_friendly_name() for op in model.get_ops()
            if op.get_type_name() == "MatMul" and not any(from_weights(port) for port in op.inputs())]


def _quantize_openvino(staging: Path, calibration: list[str]) -> None:
    """Static int8 of ``staging/fp32``'s export with NNCF, saved as ``staging``'s OpenVINO model."""
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    fp32 = staging / "fp32"
    reference = _Fp32Graph(fp32)
    batches = [reference.feed(calibration[start : start + 8]) for start in range(0, len(calibration), 8)]
    model = ov.Core().read_model(str(fp32 / ONNX_FILE))
    nncf.set_log_level(logging.WARNING)  # its per-step progress bars would interleave with ours
    quantized = nncf.quantize(
        model, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(batches),
        ignored_scope=nncf.IgnoredScope(names=_activation_matmuls(model), validate=False),
        advanced_parameters=AdvancedQuantizationParameters(
            smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=SMOOTH_QUANT_ALPHA)),
    )
    ov.save_model(quantized, str(staging / OPENVINO_FILE))


def _copy_beside(staging: Path, recipe: str) -> None:
    """The fp32 export's tokenizer and record beside the int8 graph, the record naming the recipe."""
    fp32 = staging / "fp32"
    record = json.loads((fp32 / ONNX_RECORD).read_text(encoding="utf-8"))
    record["int8"] = recipe
    for entry in fp32.iterdir():
        if entry.name not in (ONNX_FILE, ONNX_RECORD):
            shutil.copy2(entry, staging / entry.name)
    record["files"] = sorted(entry.name for entry in staging.iterdir() if entry.name != "fp32") + [ONNX_RECORD]
    (staging / ONNX_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")


def _timed(model: Any, texts: list[str]) -> tuple[np.ndarray, float]:
    """Document embeddings of ``texts`` and the seconds they took, after one warm-up batch."""
    model.encode_document(texts[:8])
    started = time.perf_counter()
    vectors = model.encode_document(texts)
    return vectors, time.perf_counter() - started


def _agreement(staging: Path, check: list[str]) -> tuple[float, float, float]:
    """Mean and minimum cosine between int8 and fp32 document embeddings of the held-out texts, and int8's speed-up.

    Both run on the recipe's runtime with the same threads. On a Zen 3 OpenVINO's fp32 ran at 1.10x plain
    sentence-transformers (a speed-up over it understates one over the fp32 path ``auto`` would otherwise
    take) and ONNX Runtime's at 0.93x (overstates it by that much).
    """
    fp32 = staging / "fp32"
    openvino = (staging / OPENVINO_FILE).is_file()
    if openvino:
        reference, fp32_seconds = _timed(_Fp32Graph(fp32), check)
    else:
        from fieldtune.encoders.onnx import OnnxModel

        reference, fp32_seconds = _timed(OnnxModel(fp32), check)
    shutil.rmtree(fp32)
    candidate, int8_seconds = _timed(load_int8(staging), check)
    cosines = (reference * candidate).sum(1) / (
        np.linalg.norm(reference, axis=1) * np.linalg.norm(candidate, axis=1)
    )
    return float(cosines.mean()), float(cosines.min()), fp32_seconds / max(int8_seconds, 1e-9)
