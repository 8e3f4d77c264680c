"""Trainer callbacks: a wall-clock budget, the time spent beside each checkpoint, and human-readable progress.

All hook into :class:`transformers.TrainerCallback`. Within one optimisation
step the trainer calls ``on_step_end`` on every callback (the default flow
callback first, which schedules evaluations and saves), then evaluates
(``on_evaluate``) and saves (``on_save``) if scheduled, and stops if
``control.should_training_stop`` is set.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from fieldtune.training.artifacts import checkpoint_path, record_spent_seconds
from fieldtune.training.distributed import from_main, is_main
from fieldtune.training.errors import TrainingDivergedError

logger = logging.getLogger("fieldtune.training")


def format_seconds(seconds: float) -> str:
    """``75`` -> ``"1m15s"``; ``3700`` -> ``"1h01m"``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class BudgetCallback(TrainerCallback):
    """Stops training while one final evaluation, checkpoint and model save still fit the budget.

    At the end of every step it asks: after the work already scheduled for this
    step (an evaluation and/or checkpoint), is there time for one more step
    *and* a final evaluation + checkpoint + model save? If not, it stops now and
    makes sure this step is evaluated and saved, so the best checkpoint is kept
    and loaded at the end. Evaluation and save times start as estimates and are
    replaced by measurements as soon as one has happened.
    """

    def __init__(
        self,
        *,
        deadline: float,
        step_seconds: float,
        eval_seconds: float,
        save_seconds: float,
        final_seconds: float,
        has_eval: bool,
    ) -> None:
        self.deadline = deadline  # a time.monotonic() value
        self.step_seconds = step_seconds
        self.eval_seconds = eval_seconds if has_eval else 0.0
        self.save_seconds = save_seconds
        self.final_seconds = final_seconds
        self.has_eval = has_eval
        self.triggered = False
        self._step_start = time.monotonic()
        self._mark = time.monotonic()

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._mark = time.monotonic()

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._step_start = time.monotonic()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        now = time.monotonic()
        took = now - self._step_start
        # A slow moving average: one slow step (a busy machine) should not stop training at once.
        self.step_seconds = 0.7 * self.step_seconds + 0.3 * took
        self._mark = now
        if control.should_training_stop:
            return
        scheduled = (self.eval_seconds if control.should_evaluate else 0.0) + (
            self.save_seconds if control.should_save else 0.0
        )
        final = self.eval_seconds + self.save_seconds + self.final_seconds
        fits = now + scheduled + self.step_seconds + final <= self.deadline
        # Under torchrun rank 0 decides for all: ranks that stopped a step apart would wait for each other forever.
        if from_main([fits])[0]:
            return
        left = self.deadline - now
        logger.info(
            "time budget: %s left, one more step (%.1fs) plus the final evaluation and saves "
            "(%.1fs) would not fit; "
            "stopping at step %d",
            format_seconds(left),
            self.step_seconds,
            final,
            state.global_step,
        )
        self.triggered = True
        control.should_training_stop = True
        control.should_evaluate = self.has_eval
        control.should_save = True

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        now = time.monotonic()
        self.eval_seconds = now - self._mark
        self._mark = now

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        now = time.monotonic()
        self.save_seconds = now - self._mark
        self._mark = now


class SpentTimeCallback(TrainerCallback):
    """Records the seconds of the budget spent so far in every checkpoint, as soon as it is saved.

    ``earlier`` is what the run had spent before this process resumed it, and
    ``started`` (a ``time.monotonic()`` value) when this process began; the
    sum is what a later resume subtracts from the budget. Registered before
    the other callbacks, so the record is written even when a later one
    stops the run at this save.
    """

    def __init__(self, *, started: float, earlier: float) -> None:
        self.started = started
        self.earlier = earlier

    def spent(self) -> float:
        """Seconds of the budget spent so far, earlier runs included."""
        return self.earlier + time.monotonic() - self.started

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        checkpoint = checkpoint_path(Path(args.output_dir), state.global_step)
        if checkpoint.is_dir() and is_main():  # one writer under torchrun
            record_spent_seconds(checkpoint, self.spent())


class ProgressCallback(TrainerCallback):
    """Logs step/total, loss, pairs/s, elapsed and ETA; draws a tqdm bar when ``show_bar``.

    A line is logged whenever the trainer logs a training loss (every
    ``logging_steps`` steps) and whenever the dev loss is evaluated.

    Replaces the trainer's own progress and printer callbacks. Also stops a run
    whose loss became NaN/inf with a :class:`TrainingDivergedError` that says
    what to change.
    """

    def __init__(self, *, batch_size: int, show_bar: bool, precision: str) -> None:
        self.batch_size = batch_size
        self.show_bar = show_bar
        self.precision = precision
        self.loss: float | None = None
        self._bar: Any = None
        self._start = 0.0
        self._first_step = 0
        self._step_start = 0.0
        self._step_time = 0.0

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._start = time.monotonic()
        self._first_step = state.global_step
        if self.show_bar:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=state.max_steps,
                initial=state.global_step,
                desc="training",
                unit="step",
                dynamic_ncols=True,
            )

    def on_step_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._step_start = time.monotonic()

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._step_time += time.monotonic() - self._step_start
        if self._bar is not None:
            self._bar.update(1)

    def _pairs_per_second(self, state: TrainerState) -> float:
        done = state.global_step - self._first_step
        return done * self.batch_size / self._step_time if self._step_time > 0 else 0.0

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        # The trainer logs the mean loss every ``logging_steps`` steps, after ``on_step_end``.
        if not logs or "loss" not in logs:
            return
        loss = float(logs["loss"])
        if not math.isfinite(loss):
            hint = (
                " Rerun with precision fp32."
                if self.precision != "fp32"
                else " Lower the learning rate."
            )
            raise TrainingDivergedError(
                f"the training loss became {loss} at step {state.global_step} "
                f"({self.precision}).{hint}"
            )
        self.loss = loss
        rate = self._pairs_per_second(state)
        elapsed = time.monotonic() - self._start
        done = state.global_step - self._first_step
        eta = (
            format_seconds(elapsed / done * (state.max_steps - state.global_step))
            if done
            else "n/a"
        )
        if self._bar is not None:
            self._bar.set_postfix({"loss": f"{loss:.4f}", "pairs/s": f"{rate:.1f}"})
        logger.info(
            "step %d/%d  loss %.4f  %.1f pairs/s  elapsed %s  ETA %s",
            state.global_step,
            state.max_steps,
            loss,
            rate,
            format_seconds(elapsed),
            eta,
        )

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not metrics or "eval_loss" not in metrics:
            return
        value = float(metrics["eval_loss"])
        if state.global_step == 0:
            logger.info("dev loss before training: %.4f", value)
            return
        # Called before the trainer updates state.best_metric with this evaluation.
        best = state.best_metric
        if best is None or value < best:
            logger.info("step %d: dev loss %.4f (best so far)", state.global_step, value)
        else:
            logger.info("step %d: dev loss %.4f (best %.4f)", state.global_step, value, best)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the progress bar (also called when training fails)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
