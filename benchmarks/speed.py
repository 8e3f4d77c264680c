"""Encoding and training speed: plain sentence-transformers fp32 vs fieldtune's fast paths.

In one run, on the same texts (every SciFact abstract, title included, as
``fieldtune eval`` encodes them), for each path: passages per second,
cosine agreement with plain sentence-transformers fp32 per passage, and
SciFact test nDCG@10 with the path's own query and passage embeddings.
Paths: plain ``SentenceTransformer.encode_document`` fp32 (the reference);
fieldtune's default ``Encoder`` (``--precision auto``: bf16 on CPUs that
compute it natively); and fieldtune ONNX exports (fp32 and int8 per-channel,
``fieldtune export --onnx [--int8]``). Then training pairs/s of the build's
trainer (MNRL + Matryoshka, batch 32, sequence 128) in fp32 and bf16.

    python benchmarks/speed.py [--data ../shared/data/scifact] [--limit N] [--repeat-reference]

Writes ``benchmarks/results/speed.{json,md}``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, SHARED_DATA, hardware, hardware_line, write_results  # noqa: E402

from fieldtune.encoding import Encoder, auto_precision, document_text, normalize  # noqa: E402
from fieldtune.evaluate.beir import load_beir  # noqa: E402
from fieldtune.evaluate.metrics import mean_scores, per_query_scores  # noqa: E402
from fieldtune.evaluate.systems import self_hits, top_k_run  # noqa: E402

BATCH = 32


def _load_avg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def plain_sentence_transformers(location: str) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(location, device="cpu")


def encode_path(name: str, make, docs: list[str], queries: list[str]) -> dict[str, Any]:
    """Time the passages (the measured part), then encode the queries for nDCG."""
    made = time.perf_counter()
    model = make()
    setup = time.perf_counter() - made
    model.encode_document(docs[:BATCH], batch_size=BATCH)  # warm-up: first-call allocations
    started = time.perf_counter()
    doc_vectors = np.asarray(model.encode_document(docs, batch_size=BATCH, show_progress_bar=False), dtype=np.float32)
    seconds = time.perf_counter() - started
    query_vectors = np.asarray(model.encode_query(queries, batch_size=BATCH, show_progress_bar=False), dtype=np.float32)
    logging.info("%s: %d passages in %.1fs (%.1f/s)", name, len(docs), seconds, len(docs) / seconds)
    return {"name": name, "seconds": seconds, "setup_seconds": setup, "passages_per_s": len(docs) / seconds,
            "docs": normalize(doc_vectors), "queries": normalize(query_vectors)}


def ndcg(data, query_ids: list[str], doc_ids: list[str], queries: np.ndarray, docs: np.ndarray) -> float:
    run = top_k_run(queries @ docs.T, query_ids, doc_ids, 100, self_hits(data, query_ids))
    return mean_scores(per_query_scores(data.qrels, run, query_ids))["ndcg@10"]


class _EncoderAdapter:
    """fieldtune's Encoder behind the two methods encode_path calls (no cache: we time encoding)."""

    def __init__(self, spec: str, count: int, precision: str = "auto") -> None:
        self.encoder = Encoder(spec, precision=precision, use_cache=False, show_progress=False, batch_size=BATCH)
        self.encoder.prepare(count)  # as for a corpus of this size (auto may make an int8 model: not timed)

    def encode_document(self, texts: list[str], **_: Any) -> np.ndarray:
        return self.encoder.encode(texts, kind="document")

    def encode_query(self, texts: list[str], **_: Any) -> np.ndarray:
        return self.encoder.encode(texts, kind="query")


def training_speed(docs: list[str], titles: list[str], steps: int) -> list[dict[str, Any]]:
    """Pairs/s of fieldtune's trainer on title -> abstract pairs, fp32 then bf16.

    Each precision trains twice, for 2 and for ``steps`` steps; the difference
    in wall time cancels model loading, the final dev evaluation and saving.
    """
    from fieldtune.training import TrainConfig, train
    from fieldtune.types import Pair, PairKind

    texts = {f"c{i}": text for i, text in enumerate(docs)}
    pairs = [Pair(anchor=title, positive_id=f"c{i}", kind=PairKind.TITLE, group=f"d{i}")
             for i, title in enumerate(titles) if title]
    dev, rows = pairs[:64], []
    for precision in ("fp32", "bf16"):
        seconds = {}
        for count in (2, steps):
            with tempfile.TemporaryDirectory() as tmp:
                config = TrainConfig(precision=precision, max_steps=count, eval_every_steps=count,
                                     early_stopping_patience=0, use_hard_negatives=False, seed=0)
                started = time.perf_counter()
                train(pairs[64:], dev, texts, out_dir=Path(tmp), config=config, progress=False)
                seconds[count] = time.perf_counter() - started
        per_step = (seconds[steps] - seconds[2]) / (steps - 2)
        rows.append({"precision": precision, "steps": steps, "seconds_per_step": round(per_step, 3),
                     "pairs_per_s": round(config.batch_size / per_step, 2)})
        logging.info("training %s: %s", precision, rows[-1])
    return rows


def markdown(payload: dict[str, Any]) -> str:
    ref = payload["paths"][0]
    lines = [
        "# Encoding and training speed",
        "",
        f"Hardware: {hardware_line(payload['hardware'])}; `auto` precision here = {payload['auto_precision']}. "
        f"Generated by `python benchmarks/speed.py` in {payload['seconds']:.0f}s; load average at start "
        f"{payload['load_start']}, at end {payload['load_end']}.",
        "",
        f"Encoding {payload['passages']:,} SciFact passages (title + abstract, batch {BATCH}, "
        f"{payload['hardware']['torch_threads']} threads), then its {payload['queries']} test queries for nDCG@10:",
        "",
        "| path | passages/s | speed-up vs plain fp32 | cosine to plain fp32 (mean / min) | "
        "scifact nDCG@10 | Δ nDCG@10 | load (s) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in payload["paths"]:
        lines.append(
            f"| {row['name']} | {row['passages_per_s']:.1f} | "
            f"{row['passages_per_s'] / ref['passages_per_s']:.2f}x | "
            f"{row['cosine_mean']:.5f} / {row['cosine_min']:.4f} | {row['ndcg@10']:.4f} | "
            f"{row['ndcg@10'] - ref['ndcg@10']:+.4f} | {row.get('setup_seconds', 0):.0f} |"
        )
    lines += ["", "`load` is loading the path's model before timing; for `auto = int8` the first run on a machine "
              "includes making and checking the int8 model (fieldtune/quantize.py), which is then cached."]
    if payload.get("training"):
        lines += [
            "",
            "Training (fieldtune trainer: MNRL + Matryoshka, batch 32, sequence 128, SciFact title -> abstract pairs):",
            "",
            "| precision | s/step | pairs/s |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {r['precision']} | {r['seconds_per_step']:.2f} | {r['pairs_per_s']:.1f} |" for r in payload["training"]
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument(
        "--limit", type=int, default=0, help="encode only the first N passages (nDCG then uses them only)"
    )
    parser.add_argument(
        "--train-steps", type=int, default=12, help="training steps timed per precision (0 skips; else > 2)"
    )
    parser.add_argument(
        "--repeat-reference", action="store_true", help="time plain fp32 again at the end (drift check)"
    )
    parser.add_argument("--skip-onnx", action="store_true", help="leave out the two ONNX export paths")
    parser.add_argument("--out", type=Path, default=RESULTS / "speed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from fieldtune.export import export_onnx
    from fieldtune.models import resolve_model

    started, load_start = time.time(), _load_avg()
    data = load_beir(args.data)
    doc_ids = list(data.corpus)[: args.limit or None]
    docs = [document_text(data.corpus[d].title, data.corpus[d].text) for d in doc_ids]
    query_ids = [q for q in data.qrels if q in data.queries]
    queries = [data.queries[q] for q in query_ids]
    location = resolve_model("minilm").location
    with tempfile.TemporaryDirectory() as tmp:
        kinds = () if args.skip_onnx else ("fp32", "int8")
        exports = {kind: export_onnx("minilm", Path(tmp) / kind, int8=kind == "int8") for kind in kinds}
        makers = [
            ("sentence-transformers fp32 (reference)", lambda: plain_sentence_transformers(location)),
            (f"fieldtune default (auto = {auto_precision().value})", lambda: _EncoderAdapter("minilm", len(docs))),
            ("fieldtune ONNX fp32 export", lambda: _EncoderAdapter(str(exports["fp32"]), len(docs))),
            ("fieldtune ONNX int8 export (dynamic, per-channel)", lambda: _EncoderAdapter(str(exports["int8"]),
                                                                                          len(docs))),
        ]
        if args.skip_onnx:
            makers = [maker for maker in makers if "ONNX" not in maker[0]]
        if args.repeat_reference:
            makers.append(("sentence-transformers fp32 (again)", lambda: plain_sentence_transformers(location)))
        paths = [encode_path(name, make, docs, queries) for name, make in makers]
    reference = paths[0]
    rows = []
    for path in paths:
        cosine = (path["docs"] * reference["docs"]).sum(axis=1)
        rows.append({
            "name": path["name"],
            "seconds": round(path["seconds"], 2), "setup_seconds": round(path["setup_seconds"], 1),
            "passages_per_s": round(path["passages_per_s"], 2),
            "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
            "ndcg@10": ndcg(data, query_ids, doc_ids, path["queries"], path["docs"]),
        })
    training = (
        training_speed(docs, [data.corpus[d].title for d in doc_ids], args.train_steps) if args.train_steps else []
    )
    payload = {"hardware": hardware(), "auto_precision": auto_precision().value, "passages": len(docs),
               "queries": len(query_ids), "paths": rows, "training": training, "load_start": load_start,
               "load_end": _load_avg(), "seconds": round(time.time() - started, 1)}
    write_results(args.out, payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
