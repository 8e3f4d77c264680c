"""Corpus encoding on Ray Data: passages/s with 1 and 2 actors (one CPU and one torch thread each).

The first ``--passages`` SciFact passages (title + text, as an index encodes them), minilm in
fp32, through the Ray encoder backend (:mod:`fieldtune.encoders.ray`) on a local Ray of
``--cpus`` CPUs. Each run reports two rates:

* wall: texts / seconds of the whole encode call, as ``fieldtune index --ray`` spends it (Ray
  Data planning, actors started, the model loaded once per actor, vectors collected);
* encode: texts / seconds from the first batch an actor starts to the last one it finishes
  (the actors' own clocks: the pool's steady rate, what a corpus of millions is dominated by).

A single process with one torch thread is the reference, and every run's vectors are checked
against it (max abs difference). Two plain processes (no Ray, one torch thread each, half the
passages each, started together after loading the model) give the machine's own ceiling for two
workers: what two cores return when nothing but the encodes runs on them.

Like with like: every worker (the reference, each plain process, each actor) runs one torch
thread, OMP/MKL at one thread and the tokenizers' Rust thread pool off (``TOKENIZERS_PARALLELISM
=false``, else each actor's tokenizer spreads over both cores); the actors get these through
their ``runtime_env`` too. Model loads are outside the encode rates, inside the wall rates.
Per run a profile: each actor's busy seconds (its batches' own durations) and its rate while
busy, and the pool's utilisation (busy seconds / (actors x span)): a pool that idles shows a low
utilisation, actors slowed by each other (or by other jobs) a lower busy rate than one actor alone.

On N GPUs the same code takes one GPU per actor: ``fieldtune index --corpus C --out I --ray
ray://HEAD:10001`` (or ``fieldtune build ... --ray ray://HEAD:10001``) on a cluster with GPUs.

    python benchmarks/scale_encode.py [--passages 2000] [--cpus 2] [--blocks-per-worker 4] [--no-plain] [--note TEXT]

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
#: one thread per worker everywhere (set in this process before any model runs, and in every actor's runtime_env)
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


class TimedActor(ray_backend.DocumentActor):
    """The backend's actor, with each batch's start and end on the actor's clock."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.time()
        out = super().__call__(batch)
        count = len(out["position"])
        return {**out, "started": np.full(count, started), "finished": np.full(count, time.time()),
                "pid": np.full(count, os.getpid())}


def passages(count: int) -> list[str]:
    path = SHARED_DATA / "scifact" / "corpus.jsonl"
    with path.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(count), handle, strict=False)]
    return [document_text(row.get("title", ""), row["text"]) for row in rows]


def blocks(texts: list[str], workers: int, per_worker: int) -> list[Any]:
    """The backend's Arrow blocks (position, text), ``per_worker`` of them for each actor."""
    import pyarrow as pa

    size = max(ray_backend.ACTOR_BATCH, -(-len(texts) // (workers * per_worker)))
    table = pa.table({"position": np.arange(len(texts), dtype=np.int64), "text": texts})
    return [table.slice(start, size) for start in range(0, len(texts), size)]


def profile(pids: np.ndarray, started: np.ndarray, finished: np.ndarray, workers: int) -> dict[str, Any]:
    """Per actor: passages, busy seconds (its batches' own durations), rate while busy; the pool's utilisation."""
    span = float(finished.max() - started.min())
    actors = []
    for pid in np.unique(pids):
        mine = pids == pid
        # one row per passage; a batch's duration counted once (its rows share start and end)
        pairs = np.unique(np.stack([started[mine], finished[mine]], axis=1), axis=0)
        busy = float((pairs[:, 1] - pairs[:, 0]).sum())
        actors.append({"passages": int(mine.sum()), "batches": len(pairs), "busy_s": round(busy, 1),
                       "passages_per_busy_s": round(int(mine.sum()) / busy, 1)})
    busy_total = sum(actor["busy_s"] for actor in actors)
    return {"actors": actors, "utilisation": round(busy_total / (workers * span), 3)}


def on_ray(texts: list[str], workers: int, per_worker: int, in_flight: int | None) -> tuple[dict[str, Any], np.ndarray]:
    """Encode ``texts`` with ``workers`` actors; the rates, the profile and the vectors in input order."""
    import ray

    backend = Encoder(MODEL, precision=PRECISION, backend="ray").model
    assert isinstance(backend, ray_backend.RayBackend)
    parts = blocks(texts, workers, per_worker)
    started = time.perf_counter()
    encoded = ray.data.from_arrow(parts).map_batches(
        TimedActor, fn_constructor_args=(backend.ref, PRECISION, 1), batch_size=ray_backend.ACTOR_BATCH,
        batch_format="numpy", num_cpus=1,
        compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=in_flight),
        runtime_env={"env_vars": ONE_THREAD_ENV},
    )
    columns: dict[str, list[np.ndarray]] = {"position": [], "vector": [], "started": [], "finished": [], "pid": []}
    for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
        for name, values in columns.items():
            values.append(batch[name])
    wall = time.perf_counter() - started
    merged = {name: np.concatenate(values) for name, values in columns.items()}
    result = np.empty((len(texts), merged["vector"].shape[1]), dtype=np.float32)
    result[merged["position"]] = merged["vector"]
    span = float(merged["finished"].max() - merged["started"].min())
    return {"workers": workers, "blocks": len(parts), "wall_s": round(wall, 1), "encode_s": round(span, 1),
            "passages_per_s_wall": round(len(texts) / wall, 1),
            "passages_per_s_encode": round(len(texts) / span, 1),
            "profile": profile(merged["pid"], merged["started"], merged["finished"], workers)}, result


def _plain_worker(texts: list[str], slot: int, barrier: Any, results: Any) -> None:
    """One plain process: load the model, wait for the others, encode its share with one torch thread."""
    os.environ.update(ONE_THREAD_ENV)
    encoder = Encoder(MODEL, precision=PRECISION, use_cache=False, show_progress=False)
    _ = encoder.model
    with torch_threads(1):
        barrier.wait()
        started = time.time()
        vectors = encoder.model.encode_document(texts, batch_size=ray_backend.ACTOR_BATCH, show_progress=False)
        results.put((slot, started, time.time(), np.asarray(vectors, dtype=np.float32)))


def plain_processes(texts: list[str], workers: int) -> tuple[dict[str, Any], np.ndarray]:
    """``workers`` plain processes (spawned, no Ray) encoding interleaved shares together: the hardware's ceiling."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    shares = [list(range(slot, len(texts), workers)) for slot in range(workers)]
    processes = [context.Process(target=_plain_worker, args=([texts[i] for i in share], slot, barrier, results))
                 for slot, share in enumerate(shares)]
    for process in processes:
        process.start()
    done = [results.get() for _ in processes]
    for process in processes:
        process.join()
    span = max(end for _, _, end, _ in done) - min(start for _, start, _, _ in done)
    result = np.empty((len(texts), done[0][3].shape[1]), dtype=np.float32)
    for slot, _, _, vectors in done:
        result[shares[slot]] = vectors
    per_process = [round(len(shares[slot]) / (end - start), 1) for slot, start, end, _ in sorted(done)]
    return {"workers": f"{workers} plain processes (no Ray), 1 thread each", "wall_s": round(span, 1),
            "encode_s": round(span, 1), "passages_per_s_wall": round(len(texts) / span, 1),
            "passages_per_s_encode": round(len(texts) / span, 1),
            "profile": {"passages_per_s_each": per_process}}, result


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
        f"{payload['cpus']} CPUs, one CPU and one torch thread per actor (at nice "
        f"{payload.get('worker_niceness', 15)}), "
        f"{payload.get('blocks_per_worker', 4)} blocks per actor, "
        f"{payload.get('tasks_in_flight_per_actor', 'default')} block(s) queued per actor. "
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
              f"{payload['speedup_wall']}x (wall, actor start-up and model loads included)."]
    if payload.get("speedup_plain") is not None:
        lines += [f"Two plain processes over one (the machine's ceiling for two workers): {payload['speedup_plain']}x."]
    lines += ["", "Profile (each actor's batches on its own clock):", "",
              "| run | blocks | actor: passages, busy s, passages/busy s | utilisation |", "|---|---:|---|---:|"]
    for row in payload["runs"]:
        if isinstance(row["workers"], int):
            actors = "; ".join(f"{a['passages']}, {a['busy_s']} s, {a['passages_per_busy_s']}/s"
                               for a in row["profile"]["actors"])
            lines.append(f"| Ray, {row['workers']} actor(s) | {row['blocks']} | {actors} | "
                         f"{row['profile']['utilisation']:.0%} |")
    lines += [""]
    lines += [f"- {note}" for note in payload.get("notes", [])]
    lines += ["", f"`{payload['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=2000)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--blocks-per-worker", type=int, default=ray_backend.BLOCKS_PER_WORKER)
    parser.add_argument("--in-flight", type=int, default=ray_backend.TASKS_IN_FLIGHT_PER_ACTOR,
                        help="blocks queued per actor (0: Ray's default)")
    parser.add_argument("--no-plain", action="store_true", help="skip the two plain processes (the ceiling)")
    parser.add_argument("--out", default=str(RESULTS / "scale_encode"))
    parser.add_argument("--note", action="append", default=[], help="a line to add under the table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    os.environ.update(ONE_THREAD_ENV)  # before any model runs here; local Ray's workers inherit it as well
    import ray

    load_start = [round(x, 2) for x in os.getloadavg()]
    started = time.perf_counter()
    texts = passages(args.passages)
    reference_row, reference = local(texts)
    logger.info("local: %s", reference_row)
    runs = [reference_row]
    speedup_plain = None
    if not args.no_plain:
        row, vectors = plain_processes(texts, 2)
        row["max_abs_diff"] = float(np.abs(vectors - reference).max())
        logger.info("plain: %s", row)
        runs.append(row)
        speedup_plain = round(reference_row["encode_s"] / row["encode_s"], 2)
    ray_backend.start(ray_backend.RaySettings(workers=args.cpus))
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        for workers in (1, 2):
            row, vectors = on_ray(texts, workers, args.blocks_per_worker, args.in_flight or None)
            row["max_abs_diff"] = float(np.abs(vectors - reference).max())
            logger.info("ray: %s", row)
            runs.append(row)
    finally:
        ray.shutdown()
    one, two = [row for row in runs if isinstance(row["workers"], int)]
    payload = {
        "command": "python " + " ".join(sys.argv), "hardware": hardware(), "passages": len(texts), "cpus": args.cpus,
        "runs": runs, "speedup_encode": round(one["encode_s"] / two["encode_s"], 2),
        "speedup_wall": round(one["wall_s"] / two["wall_s"], 2), "speedup_plain": speedup_plain,
        "blocks_per_worker": args.blocks_per_worker, "worker_niceness": ray_backend.LOCAL_WORKER_NICENESS,
        "tasks_in_flight_per_actor": args.in_flight or "Ray's default",
        "seconds": round(time.perf_counter() - started, 1),
        "load_start": load_start, "load_end": [round(x, 2) for x in os.getloadavg()], "notes": args.note,
    }
    write_results(Path(args.out), payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
