"""Where a corpus-only build's wall time goes, against the CPU issue's bound.

Runs ``fieldtune build`` on a public set's corpus with default settings (the
default training budget) into a fresh work directory and a fresh embedding
cache, reads each stage's seconds from the build's manifest and each large
encode's from the build's log, and times one plain encode of the same chunks
with the base model at the build's precision (no cache) to state the bound:
build wall time <= training budget + 2 x one corpus encode + 90 s. Writes
``benchmarks/results/build_time.{json,md}``.

With ``--stop-at HH:MM`` (UTC; a benchmark slot's end) a build still running
then is stopped and the stages it finished are reported; the separate encode
is skipped when it would not fit, and the mine stage's own encode of the
chunks (the same model, precision and texts) stands in for it, labelled so.

    python benchmarks/build_time.py [--data ../shared/data/scifact] [--budget-minutes 15] [--stop-at 22:36]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, SHARED_DATA, deadline_of, hardware, hardware_line, write_results  # noqa: E402

from fieldtune.workdir import read_jsonl  # noqa: E402

STAGE_LINE = re.compile(r"^(\d\d:\d\d:\d\d) INFO fieldtune\.build: stage (\w+) \.\.\.")
ENCODE_LINE = re.compile(r"fieldtune\.encoding: encoded (\d+) (\w+) texts in ([\d.]+)s \(\d+/s, (\w+)\)")


def one_corpus_encode(chunks: Path, cache: Path) -> tuple[float, str]:
    """Seconds to encode the build's chunks once with the base model (auto precision, int8 model already made)."""
    os.environ["FIELDTUNE_CACHE"] = str(cache)
    from fieldtune.encoding import Encoder, document_text

    texts = [document_text(r.get("title", ""), r["text"]) for r in read_jsonl(chunks)]
    encoder = Encoder("minilm", use_cache=False, show_progress=False)
    encoder.prepare(len(texts))  # an int8 model is made (or found) before timing, as in the build
    started = time.perf_counter()
    encoder.encode(texts, kind="document")
    return time.perf_counter() - started, encoder.precision.value


def run_build(command: list[str], env: dict[str, str], log: Path, deadline: float | None) -> tuple[float, bool]:
    """The build's wall seconds and whether it finished (False: stopped at ``deadline``); its output goes to ``log``."""
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        process = subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            process.wait(timeout=None if deadline is None else max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)  # its own session: the build and the workers it started
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return time.perf_counter() - started, False
    if process.returncode != 0:
        raise SystemExit(f"the build failed (exit {process.returncode}); its output: {log}")
    return time.perf_counter() - started, True


def encodes_by_stage(log: Path) -> dict[str, list[dict]]:
    """Each stage's large encodes (texts, kind, seconds), read from the build's log."""
    found: dict[str, list[dict]] = {}
    stage = "start"
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        started = STAGE_LINE.match(line)
        if started:
            stage = started.group(2)
            continue
        encoded = ENCODE_LINE.search(line)
        if encoded:
            found.setdefault(stage, []).append({"texts": int(encoded.group(1)), "kind": encoded.group(2),
                                                "seconds": float(encoded.group(3)), "precision": encoded.group(4)})
    return found


def stage_seconds(work: Path, log: Path, wall: float) -> dict[str, float]:
    """Seconds per stage from the manifest; a stage the stop cut short gets its time until then from the log."""
    manifest = work / "manifest.json"
    stages = {}
    if manifest.is_file():
        entries = json.loads(manifest.read_text(encoding="utf-8"))["stages"]
        stages = {name: float(entry.get("seconds") or 0.0) for name, entry in entries.items()}
    started = [m.group(2) for m in map(STAGE_LINE.match, log.read_text(encoding="utf-8").splitlines()) if m]
    running = [name for name in started if name not in stages]
    if running:
        stages[f"{running[-1]} (stopped)"] = round(max(0.0, wall - sum(stages.values())), 1)
    return stages


def stage_outcomes(work: Path) -> dict:
    """What the stages that decide the time did: training steps and why it stopped, mining's pairs, the gate's pick."""
    manifest = work / "manifest.json"
    if not manifest.is_file():
        return {}
    entries = json.loads(manifest.read_text(encoding="utf-8"))["stages"]
    stats = {name: entry.get("stats") or {} for name, entry in entries.items()}
    train = stats.get("train", {})
    outcomes = {"train": {k: train.get(k) for k in ("steps", "best_step", "stopped_by", "planned_steps",
                                                     "scheduled_steps") if k in train},
                "gate": {k: stats.get("gate", {}).get(k) for k in ("chosen", "scores")}}
    mine = stats.get("mine", {})
    outcomes["mine"] = {split: {k: v for k, v in values.items() if not isinstance(v, dict)}
                        for split, values in mine.items() if isinstance(values, dict)}
    return outcomes


def corpus_encode_from_log(encodes: dict[str, list[dict]], chunks: int) -> dict | None:
    """The mine stage's encode of the chunks (the base model, the build's precision): one corpus encode."""
    for encode in encodes.get("mine", []):
        if encode["kind"] == "document" and encode["texts"] == chunks:
            return encode
    return None


def markdown(payload: dict) -> str:
    encodes = payload["encodes"]
    rows = []
    for name, seconds in payload["stages"].items():
        own = encodes.get(name.split(" ")[0], [])
        detail = ", ".join(f"{e['texts']:,} {e['kind']} texts {e['seconds']:.0f} s" for e in own) or "-"
        rows.append(f"| {name} | {seconds:.0f} | {detail} |")
    bound = payload["bound_seconds"]
    finished = payload["finished"]
    if bound is None:
        verdict = "not stated (stopped before one corpus encode was timed)"
    else:
        verdict = ("met" if payload["wall_seconds"] <= bound else "not met") if finished else "not met (stopped)"
    source = {"separate": "a separate plain encode after the build",
              "mine stage": "the mine stage's own encode of the chunks (no time was left for a separate one)",
              "none": "nowhere"}[payload["encode_source"]]
    encode = "not timed" if payload["encode_seconds"] is None else f"{payload['encode_seconds']:.0f} s"
    bound_text = "" if bound is None else (
        f" Bound: budget {payload['budget_minutes'] * 60:.0f} s + 2 x {payload['encode_seconds']:.0f} s + 90 s = "
        f"{bound:.0f} s:")
    return "\n".join([
        "# Build wall time (corpus only, default settings)",
        "",
        f"Hardware: {hardware_line(payload['hardware'])}. Set: {payload['data']} ({payload['chunks']:,} chunks); "
        f"training budget {payload['budget_minutes']:g} min; load average at start {payload['load_start']}, "
        f"at end {payload['load_end']}. Generated by `python benchmarks/build_time.py`.",
        "",
        "| stage | seconds | of which encoding (>= 256 texts each) |",
        "| --- | --- | --- |",
        *rows,
        f"| **build wall time** | **{payload['wall_seconds']:.0f}**{'' if finished else ' (stopped)'} | |",
        "",
        f"One encode of the {payload['chunks']:,} chunks with the base model ({payload['precision']}), from "
        f"{source}: {encode}.{bound_text} **{verdict}** ({payload['wall_seconds']:.0f} s).",
        "",
        f"What the deciding stages did: {json.dumps(payload.get('outcomes', {}))}",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "scifact")
    parser.add_argument("--budget-minutes", type=float, default=None, help="default: the build's default")
    parser.add_argument("--out", type=Path, default=RESULTS / "build_time")
    parser.add_argument("--stop-at", help="HH:MM UTC: stop the build then and report the stages it finished")
    parser.add_argument("--log", type=Path, default=None, help="keep the build's output here (default: discarded)")
    args = parser.parse_args()
    from fieldtune.config import BuildConfig

    budget = args.budget_minutes or BuildConfig().budget_minutes
    deadline = deadline_of(args.stop_at)
    with tempfile.TemporaryDirectory() as tmp:
        work, cache = Path(tmp) / "work", Path(tmp) / "cache"
        log = args.log or Path(tmp) / "build.log"
        command = [sys.executable, "-m", "fieldtune", "build", str(args.data / "corpus.jsonl"), "--out", str(work),
                   "--budget-minutes", str(budget)]
        load_start = [round(x, 2) for x in os.getloadavg()]
        wall, finished = run_build(command, {**os.environ, "FIELDTUNE_CACHE": str(cache)}, log, deadline)
        stages = stage_seconds(work, log, wall)
        outcomes = stage_outcomes(work)
        encodes = encodes_by_stage(log)
        chunks = sum(1 for _ in read_jsonl(work / "chunks.jsonl"))
        from_log = corpus_encode_from_log(encodes, chunks)
        left = None if deadline is None else deadline - time.time()
        if left is None or left > 1.2 * (from_log["seconds"] if from_log else 240) + 30:
            encode, precision = one_corpus_encode(work / "chunks.jsonl", cache)
            source = "separate"
        elif from_log is not None:
            encode, precision, source = from_log["seconds"], from_log["precision"], "mine stage"
        else:  # stopped before the mine stage's encode, with no time left for one: the stages alone
            encode, precision, source = None, None, "none"
    payload = {"hardware": hardware(), "data": args.data.name, "budget_minutes": budget, "chunks": chunks,
               "stages": stages, "outcomes": outcomes, "encodes": encodes, "finished": finished,
               "wall_seconds": round(wall, 1),
               "encode_seconds": None if encode is None else round(encode, 1), "encode_source": source,
               "encode_in_mine": from_log, "precision": precision,
               "bound_seconds": None if encode is None else round(budget * 60 + 2 * encode + 90, 1),
               "load_start": load_start, "load_end": [round(x, 2) for x in os.getloadavg()]}
    write_results(args.out, payload, markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
