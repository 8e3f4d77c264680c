"""benchmarks/build_time.py reads a build's log: each large encode is filed under the stage that ran it."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from fieldtune.encoders import ENCODER_BACKENDS, BackendSpec
from fieldtune.encoding import LARGE_ENCODE, Encoder

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "build_time.py"
#: the CLI's log format (fieldtune.cli), which the benchmark parses
LOG_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_time", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_time", module)
    spec.loader.exec_module(module)
    return module


class _Ones:
    max_seq_length = 8
    tokenizer = None

    def get_embedding_dimension(self) -> int:
        return 2

    def encode_document(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        return np.ones((len(texts), 2))

    encode_query = encode_document


def _encode_line(texts: int, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    """The line the Encoder really logs for an encode of ``texts`` texts, formatted as the CLI does."""
    monkeypatch.setitem(ENCODER_BACKENDS._items, "ones", BackendSpec(handles=lambda ref: False,
                                                                     load=lambda ref, precision: _Ones()))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="fieldtune.encoding"):
        Encoder("minilm", precision="fp32", backend="ones", use_cache=False,
                show_progress=False).encode([f"t{i}" for i in range(texts)], kind="document")
    lines = [LOG_FORMAT.format(r) for r in caplog.records if "encoded" in r.getMessage()]
    assert len(lines) == (1 if texts >= LARGE_ENCODE else 0)
    return lines[0] if lines else ""


def test_encodes_are_filed_under_their_stage_and_the_mine_stage_gives_one_corpus_encode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_time = _script()
    chunks, pool = _encode_line(300, caplog, monkeypatch), _encode_line(LARGE_ENCODE, caplog, monkeypatch)
    assert _encode_line(LARGE_ENCODE - 1, caplog, monkeypatch) == ""  # small encodes are not logged
    log = tmp_path / "build.log"
    log.write_text("\n".join([
        "10:00:00 INFO fieldtune.build: stage mine ...", chunks,
        "10:01:00 INFO fieldtune.build: stage gate ...", pool, pool,
        "10:02:00 INFO fieldtune.build: stage eval ...",
    ]) + "\n")
    encodes = build_time.encodes_by_stage(log)
    assert [e["texts"] for e in encodes["mine"]] == [300] and [e["texts"] for e in encodes["gate"]] == [256, 256]
    assert encodes["mine"][0]["kind"] == "document" and encodes["mine"][0]["precision"] == "fp32"
    assert build_time.corpus_encode_from_log(encodes, 300) == encodes["mine"][0]
    assert build_time.corpus_encode_from_log(encodes, 256) is None  # only the mine stage's encode of every chunk
    # a build stopped in its third stage: the two finished from the manifest, the third up to the stop
    work = tmp_path / "work"
    work.mkdir()
    (work / "manifest.json").write_text('{"stages": {"mine": {"seconds": 60.0}, "gate": {"seconds": 60.0}}}')
    assert build_time.stage_seconds(work, log, wall=150.0) == {"mine": 60.0, "gate": 60.0, "eval (stopped)": 30.0}
