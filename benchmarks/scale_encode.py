"""Corpus encoding on Ray Data: passages/s with 1 and 2 actors (one CPU and one torch thread each).

The first ``--passages`` SciFact passages (title + text, as an index encodes them), minilm in
fp32, through the Ray encoder backend (:mod:`fieldtune.encoders.ray`) on a local Ray of
``--cpus`` CPUs. Each run reports two rates:

* wall: texts / seconds of the whole encode call, as ``fieldtune index --ray`` spends it (Ray
  Data planning, actors started, the model loaded once per actor, vectors collected);
* encode: texts / seconds from the first batch an actor starts to the last one it finishes
  (the actors' own clocks: the pool's steady rate, what a corpus of millions is dominated by).

A single process with one torch thread is the reference, and every run's vectors are checked
against it (max abs difference). On N GPUs the same code takes one GPU per actor:
``fieldtune index --corpus C --out I --ray ray://HEAD:10001`` on a cluster with GPUs.

    python benchmarks/scale_encode.py [--passages 2000] [--cpus 2] [--note TEXT]

Writes ``benchmarks/results/scale_encode.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, SHARED_DATA, hardware, hardware_line, write_results  # noqa: E402

from fieldtune.encoders import ray as ray_backend  # noqa: E402
from fieldtune.encoding import Encoder, document_text  # noqa: E402
from fieldtune.hardware import torch_threads  # noqa: E402

logger = logging.getLogger("bench")
MODEL, PRECISION = "minilm", "fp32"


class TimedActor(ray_backend.DocumentActor):
    """The backend's actor, with each batch's start and end on the actor's clock."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.time()
        out = super().__call__(batch)
        count = len(out["position"])
        return {**out, "started": np.full(count, started), "finished": np.full(count, time.time())}


def passages(count: int) -> list[str]:
    path = SHARED_DATA / "scifact" / "corpus.jsonl"
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle, strict=False)]
    return [document_text(row.get("title", ""), row["text"]) for row in rows]


def on_ray(texts: list[str], workers: int) -> tuple[dict[str, Any], np.ndarray]:
    """Encode ``texts`` with ``workers`` actors; the rates and the vectors in input order."""
    import ray

    backend = Encoder(MODEL, precision=PRECISION, backend="ray").model
    assert isinstance(backend, ray_backend.RayBackend)
    blocks = backend.blocks(texts, workers)
    started = time.perf_counter()
    encoded = ray.data.from_arrow(blocks).map_batches(
        TimedActor, fn_constructor_args=(backend.ref, PRECISION, 1), batch_size=ray_backend.ACTOR_BATCH,
        batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1,
    )
    positions, vectors, first, last = [], [], [], []
    for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
        positions.append(batch["position"])
        vectors.append(batch["vector"])
        first.append(batch["started"].min())
        last.append(batch["finished"].max())
    wall = time.perf_counter() - started
    result = np.empty((len(texts), vectors[0].shape[1]), dtype=np.float32)
    result[np.concatenate(positions)] = np.concatenate(vectors)
    span = float(max(last) - min(first))
    return {"workers": workers, "wall_s": round(wall, 1), "encode_s": round(span, 1),
            "passages_per_s_wall": round(len(texts) / wall, 1),
            "passages_per_s_encode": round(len(texts) / span, 1)}, result


def local(texts: list[str]) -> tuple[dict[str, Any], np.ndarray]:
    encoder = Encoder(MODEL, precision=PRECISION, use_cache=False, show_progress=False)
    _ = encoder.model
    started = time.perf_counter()
    with torch_threads(1):
        vectors = encoder.model.encode_document(texts, batch_size=ray_backend.ACTOR_BATCH, show_progress=False)
    seconds = time.perf_counter() - started
    return {"workers": "1 process, 1 thread", "wall_s": round(seconds, 1), "encode_s": round(seconds, 1),
            "passages_per_s_wall": round(len(texts) / seconds, 1),
            "passages_per_s_encode": round(len(texts) / seconds, 1)}, np.asarray(vectors, dtype=np.float32)


def markdown(payload: dict[str, Any]) -> str:
    lines = [
        "# Corpus encoding on Ray Data: 1 vs 2 actors",
        "",
        f"{payload['passages']} SciFact passages, {MODEL} {PRECISION}, max_seq_length 256; local Ray of "
        f"{payload['cpus']} CPUs, one CPU and one torch thread per actor. "
        f"Machine: {hardware_line(payload['hardware'])}. "
        f"Load average {payload['load_start']} at the start, {payload['load_end']} at the end.",
        "",
        "| run | wall s | passages/s (wall) | encode s | passages/s (encode) | max abs diff vs local |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in payload["runs"]:
        name = row["workers"] if isinstance(row["workers"], str) else f"Ray, {row['workers']} actor(s)"
        lines.append(f"| {name} | {row['wall_s']} | {row['passages_per_s_wall']} | {row['encode_s']} | "
                     f"{row['passages_per_s_encode']} | {row.get('max_abs_diff', 0.0):.1e} |")
    lines += ["", f"Speed-up of 2 actors over 1: {payload['speedup_encode']}x (encode), "
              f"{payload['speedup_wall']}x (wall, actor start-up and model loads included).", ""]
    lines += [f"- {note}" for note in payload.get("notes", [])]
    lines += ["", f"`{payload['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "scale_encode"))
    parser.add_argument("--note", action="append", default=[], help="a line to add under the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import ray

    load_start = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    texts = passages(args.passages)
    reference_row, reference = local(texts)
    logger.info("local: %s", reference_row)
    ray_backend.start(ray_backend.RaySettings(workers=args.cpus))
    ray.data.DataContext.get_current().enable_progress_bars = False
    runs = [reference_row]
    try:
        for workers in (1, 2):
            row, vectors = on_ray(texts, workers)
            row["max_abs_diff"] = float(np.abs(vectors - reference).max())
            logger.info("ray: %s", row)
            runs.append(row)
    finally:
        ray.shutdown()
    one, two = runs[1], runs[2]
    payload = {
        "command": "python " + " ".join(sys.argv), "hardware": hardware(), "passages": len(texts), "cpus": args.cpus,
        "runs": runs, "speedup_encode": round(one["encode_s"] / two["encode_s"], 2),
        "speedup_wall": round(one["wall_s"] / two["wall_s"], 2), "seconds": round(time.perf_counter() - started, 1),
        "load_start": load_start, "load_end": [round(x, 2) for x in os.getloadavg()], "notes": args.note,
    }
    write_results(Path(args.out), payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
