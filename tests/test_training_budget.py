"""A resumed run continues the time budget (issue 13, item 15) instead of starting it again.

On commit 59c04d1 a build interrupted and rerun trained with a whole new budget (5-minute budget:
about 6.5 minutes trained). Now each checkpoint records the seconds spent when it was saved, and a
resumed run subtracts them: from the steps it plans and from the deadline of the callback that stops it.
The one test that trains runs 4 tiny steps (about 12 s on 2 cores), so it stays in the default suite.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from fieldtune.models import BASE_RECORD

pytest.importorskip("datasets")
pytest.importorskip("accelerate")

from fieldtune.training import StoppedBecause, train  # noqa: E402
from fieldtune.training.artifacts import SPENT_RECORD, record_spent_seconds, spent_seconds  # noqa: E402
from fieldtune.training.callbacks import ProgressCallback, SpentTimeCallback  # noqa: E402

from .test_training import synthetic, tiny_config  # noqa: E402


def test_each_saved_checkpoint_records_the_seconds_spent(tmp_path: Path) -> None:
    """The callback adds the earlier runs' seconds to this one's and writes them into the new checkpoint."""
    (tmp_path / "checkpoint-6").mkdir()
    callback = SpentTimeCallback(started=time.monotonic() - 2.0, earlier=40.0)
    callback.on_save(SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=6), None)
    assert 42.0 <= spent_seconds(tmp_path / "checkpoint-6") < 45.0
    callback.on_save(SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=9), None)
    assert not (tmp_path / "checkpoint-9").exists()  # no checkpoint there: nothing is created


def test_a_checkpoint_without_a_record_resumes_with_the_whole_budget(tmp_path: Path) -> None:
    assert spent_seconds(tmp_path) == 0.0
    (tmp_path / SPENT_RECORD).write_text("{broken")
    assert spent_seconds(tmp_path) == 0.0
    record_spent_seconds(tmp_path, 12.3456)
    assert json.loads((tmp_path / SPENT_RECORD).read_text()) == {"seconds": 12.346}


def test_a_resumed_run_has_only_the_budget_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    chunks, pairs = synthetic()
    dev = pairs[::5]
    train_pairs = [p for p in pairs if p not in dev]
    config = tiny_config(epochs=2, budget_minutes=2.0)  # 8 steps, checkpoints every 2; far inside the budget

    def interrupt_after_step_4(self, args, state, control, **kwargs):
        if state.global_step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressCallback, "on_save", interrupt_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(train_pairs, dev, chunks, out_dir=tmp_path, config=config, progress=False)
    monkeypatch.undo()
    checkpoints = tmp_path / "checkpoints"
    at_2, at_4 = spent_seconds(checkpoints / "checkpoint-2"), spent_seconds(checkpoints / "checkpoint-4")
    assert 0 < at_2 < at_4 < 120

    # As if the interrupted run had used all but half a second of its two minutes.
    record_spent_seconds(checkpoints / "checkpoint-4", 119.5)
    with caplog.at_level(logging.INFO, logger="fieldtune.training"):
        result = train(train_pairs, dev, chunks, out_dir=tmp_path, config=config, progress=False)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-4")
    assert result.earlier_seconds == 119.5 and result.seconds > 119.5
    # A whole new budget (the old behaviour) would have trained on to step 8.
    assert result.steps == 4 and result.stopped_because is StoppedBecause.BUDGET
    assert "the earlier runs spent 2m00s" in caplog.text and "finishing from the checkpoint at step 4" in caplog.text
    record = json.loads((tmp_path / "model" / BASE_RECORD).read_text())
    assert record["steps"] == 4 and record["seconds"] > 119.5
