"""The int8 recipe sweep behind ``fieldtune/quantize.py``: agreement with fp32 per NNCF setting.

Each variant quantises minilm's fp32 ONNX export with NNCF (calibrated as
fieldtune does, on 64 docstrings unless the variant says otherwise) and
reports the mean / minimum cosine of its embeddings to fp32 on the 64
held-out docstrings of the product's guard and on the first 300 SciFact
passages, and its seconds for those 300 at one thread. One variant per
process (NNCF keeps state), so the sweep is a loop in the shell:

    for v in base alpha0.7 alpha0.8 attn alpha0.8+attn; do
        OMP_NUM_THREADS=1 python benchmarks/int8_recipes.py $v >> /tmp/int8.jsonl; done
    python benchmarks/int8_recipes.py --table /tmp/int8.jsonl   # writes benchmarks/results/int8_recipes.{json,md}

Variants: ``base`` (NNCF's transformer defaults: SmoothQuant alpha 0.95), ``alphaA`` (SmoothQuant alpha A),
``long`` (calibration texts joined four at a time), ``sci`` (calibrated on other SciFact passages: a
domain check, not a product option), ``nobiasfast`` (full bias correction), ``attn`` (attention's
activation x activation MatMuls kept fp32), ``ffn-out`` / ``last-ffn-out`` (FFN output MatMuls kept fp32);
joined with ``+``.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, SHARED_DATA, hardware, hardware_line, write_results  # noqa: E402

IGNORED = {"attn": r".*/attention/self/MatMul(_1)?$", "ffn-out": r".*/output/dense/MatMul$",
           "last-ffn-out": r".*layer\.5/output/dense/MatMul$"}


def _cosines(a: np.ndarray, b: np.ndarray) -> list[float]:
    c = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return [round(float(c.mean()), 5), round(float(c.min()), 4)]


def run_variant(variant: str) -> dict:
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    from fieldtune.encoders.openvino import OpenVinoModel
    from fieldtune.export import export_onnx
    from fieldtune.onnx_layout import ONNX_FILE, OPENVINO_FILE
    from fieldtune.quantize import _Fp32Graph, _texts

    work = Path(tempfile.mkdtemp())
    fp32 = work / "fp32"
    export_onnx("minilm", fp32)
    reference = _Fp32Graph(fp32)
    calibration, check = _texts()
    rows = [json.loads(line) for line in (SHARED_DATA / "scifact" / "corpus.jsonl").open()]
    passages = [f"{r.get('title', '')} {r.get('text', '')}".strip() for r in rows[:300]]
    options: dict = {"model_type": nncf.ModelType.TRANSFORMER}
    patterns = []
    for part in variant.split("+"):
        if part.startswith("alpha"):
            options["advanced_parameters"] = AdvancedQuantizationParameters(
                smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=float(part[5:])))
        elif part == "long":
            calibration = [" ".join(calibration[i:i + 4]) for i in range(0, len(calibration), 2)] + calibration
        elif part == "sci":
            calibration = [f"{r.get('title', '')} {r.get('text', '')}" for r in rows[1000:1064]]
        elif part == "nobiasfast":
            options["fast_bias_correction"] = False
        elif part in IGNORED:
            patterns.append(IGNORED[part])
        elif part != "base":
            raise SystemExit(f"unknown variant part {part!r}")
    if patterns:
        options["ignored_scope"] = nncf.IgnoredScope(patterns=patterns, validate=False)
    nncf.set_log_level(logging.WARNING)
    batches = [reference.feed(calibration[i:i + 8]) for i in range(0, len(calibration), 8)]
    started = time.perf_counter()
    quantized = nncf.quantize(ov.Core().read_model(str(fp32 / ONNX_FILE)), nncf.Dataset(batches),
                              subset_size=len(batches), **options)
    quantise_s = time.perf_counter() - started
    out = work / "int8"
    out.mkdir()
    ov.save_model(quantized, str(out / OPENVINO_FILE))
    for entry in fp32.iterdir():
        if entry.name != ONNX_FILE:
            shutil.copy2(entry, out / entry.name)
    model = OpenVinoModel(out, threads=1)
    started = time.perf_counter()
    on_passages = model.encode_document(passages)
    encode_s = time.perf_counter() - started
    result = {"variant": variant, "check": _cosines(model.encode_document(check), reference.encode_document(check)),
              "scifact300": _cosines(on_passages, reference.encode_document(passages)),
              "int8_s_300": round(encode_s, 1), "quantise_s": round(quantise_s, 1)}
    shutil.rmtree(work)
    return result


def table(lines: Path) -> None:
    rows = [json.loads(line) for line in lines.read_text().splitlines() if line.strip()]
    payload = {"hardware": hardware(), "variants": rows}
    md = ["# int8 recipes: agreement with fp32 (minilm)", "",
          f"Hardware: {hardware_line(payload['hardware'])}. Generated by `python benchmarks/int8_recipes.py` "
          "(one process per variant, one thread; seconds were taken on a shared machine: compare cosines, "
          "not times).", "",
          "| variant | docstrings (guard): mean / min | SciFact 300: mean / min | int8 s for 300 |",
          "| --- | --- | --- | --- |"]
    md += [f"| {r['variant']} | {r['check'][0]:.5f} / {r['check'][1]:.4f} | {r['scifact300'][0]:.5f} / "
           f"{r['scifact300'][1]:.4f} | {r['int8_s_300']} |" for r in rows]
    write_results(RESULTS / "int8_recipes", payload, "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        table(Path(sys.argv[2]))
    elif len(sys.argv) == 2 and not sys.argv[1].startswith("-"):
        print(json.dumps(run_variant(sys.argv[1])), flush=True)
    else:
        raise SystemExit(__doc__)
