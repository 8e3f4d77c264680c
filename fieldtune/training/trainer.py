"""The training stage: pairs + chunk texts -> a sentence-transformers model directory.

One function, :func:`train`, composed of small steps: validate the data, load
the base model, resolve hardware/prompts/Matryoshka dimensions, build the
sentence-transformers trainer (MultipleNegativesRankingLoss inside
MatryoshkaLoss, no-duplicate batches, dev loss every ``eval_every_steps`` with
early stopping, checkpoints at the same steps), fit the plan to the time
budget, train (resuming from the latest checkpoint of the same run), and
publish ``<out>/model`` atomically with a ``fieldtune.json`` record.

Under ``torchrun`` (or ``accelerate launch``) every process runs :func:`train`:
in-batch negatives are gathered across them, rank 0 makes the budget's
decisions for all and alone writes the model (see :mod:`fieldtune.training.distributed`).

The time budget covers the whole run, across interruptions: each checkpoint
records the seconds spent when it was saved (see
:mod:`fieldtune.training.artifacts`), and a resumed run has only what is
left, for the steps it plans and for the callback that stops it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fieldtune.hardware import cpu_count, threads_for_busy_cpu, torch_threads, warn_if_cpu_busy
from fieldtune.models import embedding_dimension, load_model
from fieldtune.training import artifacts
from fieldtune.training.callbacks import BudgetCallback, ProgressCallback, SpentTimeCallback, format_seconds
from fieldtune.training.config import StoppedBecause, TrainConfig
from fieldtune.training.data import Columns, prepare_splits
from fieldtune.training.distributed import barrier, from_main, is_main, world_size
from fieldtune.training.errors import BudgetTooSmallError
from fieldtune.training.result import TrainResult, history_from_logs
from fieldtune.training.runtime import (
    Hardware,
    estimated_save_seconds,
    quiet_libraries,
    resolve_hardware,
    time_one_step,
)
from fieldtune.training.setup import (
    build_loss,
    build_trainer,
    freeze_layers,
    plan_run,
    resolve_matryoshka,
    resolve_prompts,
)
from fieldtune.types import Pair

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer

    from fieldtune.training.setup import RunPlan

logger = logging.getLogger("fieldtune.training")

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


def _require_training_extras() -> None:
    from importlib.util import find_spec

    missing = [name for name in ("datasets", "accelerate") if find_spec(name) is None]
    if missing:
        raise ImportError(f"training needs {', '.join(missing)}: pip install 'fieldtune[train]'")


def train(
    train_pairs: Sequence[Pair],
    dev_pairs: Sequence[Pair],
    chunk_texts: Mapping[str, str],
    *,
    out_dir: Path,
    config: TrainConfig,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune ``config.base`` on the pairs and write ``out_dir/model``.

    ``chunk_texts`` maps a chunk id to the text the model sees for it (title
    included); pairs reference chunks by id. Training pairs are resampled by
    weight (see :func:`fieldtune.training.data.copies_for_weight`); dev pairs
    are used as they are, for the dev loss that drives early stopping and the
    choice of the best checkpoint. Rerunning after an interruption resumes from
    the latest complete checkpoint in ``out_dir/checkpoints``, with the time
    budget the interrupted run had left (a spent budget finishes from the
    checkpoint without training further).

    Raises :class:`BudgetTooSmallError` when ``config.budget_minutes`` cannot
    fit one step, :class:`TrainingDataError` for pairs that reference unknown
    chunks, :class:`TrainConfigError` for options the model or machine cannot honour.
    """
    started = time.monotonic()
    _require_training_extras()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_cols, dev_cols = prepare_splits(
        train_pairs,
        dev_pairs,
        chunk_texts,
        seed=config.seed,
        use_hard_negatives=config.use_hard_negatives,
        loss=config.loss,
    )
    hardware = resolve_hardware(config)
    threads = config.num_threads
    if hardware.device == "cpu":
        if not threads:
            busy = threads_for_busy_cpu()  # None: the cores are idle, torch's default
            # processes launched together share the cores
            threads = max(1, (busy or cpu_count()) // world_size()) if world_size() > 1 else busy
        warn_if_cpu_busy(threads)
    artifacts.remove_stale(out_dir / MODEL_DIR)
    with quiet_libraries(), torch_threads(threads):
        run = _Run(config, hardware, train_cols, dev_cols, out_dir, started, progress and is_main())
        result = run.execute(n_train_pairs=len(train_pairs), n_dev_pairs=len(dev_pairs))
    logger.info(
        "training finished after %d steps (%s) in %s; best dev loss %s",
        result.steps,
        result.stopped_because.value,
        format_seconds(result.seconds),
        "n/a" if result.best_eval_loss is None else f"{result.best_eval_loss:.4f}",
    )
    return result


def _logs_above_bar(show_bar: bool) -> contextlib.AbstractContextManager[Any]:
    """Route console log lines through tqdm while its bar is drawn, so they do not tear it."""
    if not show_bar:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


@dataclass(frozen=True)
class _Costs:
    """Seconds of one optimisation step, one dev evaluation and one checkpoint save."""

    step: float
    eval: float
    save: float


class _Run:
    """One call of :func:`train`: holds the pieces the steps share."""

    def __init__(
        self,
        config: TrainConfig,
        hardware: Hardware,
        train_cols: Columns,
        dev_cols: Columns,
        out_dir: Path,
        started: float,
        progress: bool,
    ) -> None:
        self.config = config
        self.hardware = hardware
        self.train_cols = train_cols
        self.dev_cols = dev_cols
        self.out_dir = out_dir
        self.started = started
        self.progress = progress
        #: Seconds of the budget spent by the runs this one resumes (set when the checkpoint is found).
        self.earlier = 0.0
        self.deadline: float | None = None

    def execute(self, *, n_train_pairs: int, n_dev_pairs: int) -> TrainResult:
        config = self.config
        model, dims, weights, prompts = self._prepare_model()
        inference_max_length = model.max_seq_length
        model.max_seq_length = config.max_seq_length
        checkpoint_dir = self.out_dir / CHECKPOINT_DIR
        resume, done = self._find_checkpoint(checkpoint_dir)
        if config.budget_minutes:
            self.deadline = self.started + config.budget_minutes * 60 - self.earlier
        spent_cb = SpentTimeCallback(started=self.started, earlier=self.earlier)
        plan = plan_run(
            config,
            n_examples=len(self.train_cols),
            has_dev=len(self.dev_cols) > 0,
            resuming=resume is not None,
        )
        progress_cb = ProgressCallback(
            batch_size=plan.batch_size,
            show_bar=self.progress,
            precision=self.hardware.precision.value,
        )
        trainer, early_cb = build_trainer(
            model,
            build_loss(model, config, dims, weights),
            self.train_cols,
            self.dev_cols,
            plan=plan,
            config=config,
            hardware=self.hardware,
            prompts=prompts,
            output_dir=checkpoint_dir,
            callbacks=[spent_cb, progress_cb],
        )
        budget_cb, fitted = None, False
        if self.deadline is not None and done < plan.max_steps:
            budget_cb, fitted = self._fit_budget(trainer, model, plan, done, self.deadline)
            trainer.add_callback(budget_cb)
        try:
            with _logs_above_bar(self.progress):
                trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        except KeyboardInterrupt:
            latest = artifacts.latest_checkpoint(checkpoint_dir)
            if latest is not None and is_main():  # the steps after it were lost, but their time was spent
                artifacts.record_spent_seconds(latest, spent_cb.spent())
            logger.warning(
                "training interrupted%s", f"; rerun to resume from {latest}" if latest else ""
            )
            raise
        finally:
            progress_cb.close()

        state = trainer.state
        model.max_seq_length = inference_max_length
        result = TrainResult(
            model_dir=self.out_dir / MODEL_DIR,
            base_model=config.base,
            matryoshka_dims=dims,
            prompts=prompts,
            train_pairs=n_train_pairs,
            dev_pairs=n_dev_pairs,
            train_examples=len(self.train_cols),
            steps=state.global_step,
            best_step=getattr(state, "best_global_step", None) if plan.has_dev else None,
            best_eval_loss=float(state.best_metric)
            if plan.has_dev and state.best_metric is not None
            else None,
            stopped_because=self._stopped_because(
                state.global_step, trainer.args.max_steps, plan, budget_cb, fitted, early_cb
            ),
            seed=config.seed,
            precision=self.hardware.precision.value,
            device=self.hardware.device,
            seconds=0.0,
            earlier_seconds=self.earlier,
            resumed_from=str(resume) if resume else None,
            config={
                **config.to_dict(),
                "eval_every_steps": plan.eval_every,
                # the data's plan (epochs x batches), as in query-side records; a time budget may fit fewer
                "planned_steps": plan.max_steps,
                "scheduled_steps": trainer.args.max_steps,
                "inference_max_seq_length": inference_max_length,
                # processes that trained together (each with batch_size; in-batch negatives gathered across them)
                "world_size": world_size(),
            },
            history=history_from_logs(state.log_history),
        )
        result.seconds = spent_cb.spent()
        if is_main():
            artifacts.publish_model(model, result.model_dir, result.record())
            if not config.keep_checkpoints:
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
        barrier()  # the other ranks return once the model is there
        return result

    def _prepare_model(self) -> tuple[SentenceTransformer, list[int], list[float], dict[str, str]]:
        """Load the base in float32; settle the dimensions, prompts and frozen layers."""
        import torch

        config = self.config
        model = load_model(
            config.base, device=self.hardware.device, model_kwargs={"dtype": torch.float32}
        )
        dims, weights = resolve_matryoshka(config, embedding_dimension(model))
        prompts = resolve_prompts(config, model)
        model.prompts.update(prompts)  # saved with every checkpoint and with the final model
        frozen = freeze_layers(model, config.freeze_layers)
        if frozen:
            logger.info(
                "froze %d parameter tensors (embeddings and the first %d layers)",
                frozen,
                config.freeze_layers,
            )
        return model, dims, weights, prompts

    def _find_checkpoint(self, checkpoint_dir: Path) -> tuple[Path | None, int]:
        """The checkpoint of this same run (options and data) to resume from, and its step."""
        identity = {
            "config": self.config.run_identity(),
            "train": self.train_cols.digest(),
            "dev": self.dev_cols.digest(),
            **({"world_size": world_size()} if world_size() > 1 else {}),  # N processes train with N x the batch
        }
        resume = artifacts.resumable_checkpoint(checkpoint_dir, identity)
        if resume is None:
            return None, 0
        done = artifacts.checkpoint_global_step(resume)
        self.earlier = artifacts.spent_seconds(resume)
        logger.info(
            "resuming from %s (step %d; the earlier runs spent %s)", resume, done, format_seconds(self.earlier)
        )
        return resume, done

    def _fit_budget(
        self,
        trainer: SentenceTransformerTrainer,
        model: SentenceTransformer,
        plan: RunPlan,
        done: int,
        deadline: float,
    ) -> tuple[BudgetCallback, bool]:
        """Check that one step fits the budget, fit the plan to it, and return the guard callback.

        Returns the callback and whether the plan was shortened (then the
        learning-rate schedule decays over the steps that fit).
        """
        costs = self._measure_costs(trainer, model, plan)
        now = time.monotonic()
        # Under torchrun every rank plans from rank 0's numbers, so all plan the same number of steps.
        step, eval_s, save, left, setup_s = from_main([costs.step, costs.eval, costs.save, deadline - now,
                                                       now - self.started])
        costs = _Costs(step=step, eval=eval_s, save=save)
        per_step = costs.step + (costs.eval + costs.save) / plan.eval_every
        if left < costs.step + costs.eval + 2 * costs.save:
            if done:
                return self._budget_spent(trainer, costs, plan, done, deadline, left), True
            raise self._too_small(costs, plan, setup_s, full_s=(plan.max_steps - done) * per_step)
        if trainer.args.eval_on_start and costs.eval > 0.05 * left:
            trainer.args.eval_on_start = False  # a baseline dev loss is not worth 5% of the budget
        reserve = costs.eval * (2 if trainer.args.eval_on_start else 1) + 2 * costs.save
        fit = max(1, int((left - reserve) / per_step))
        fitted = done + fit < plan.max_steps
        logger.info(
            "time budget %s%s: one step takes ~%.2fs (%.1f pairs/s); about %d of the %d remaining "
            "steps fit%s",
            format_seconds(left),
            f" (the earlier runs spent {format_seconds(self.earlier)})" if self.earlier else "",
            costs.step,
            plan.batch_size / costs.step,
            fit,
            plan.max_steps - done,
            "; the learning-rate schedule is fitted to them" if fitted else "",
        )
        if fitted:
            trainer.args.max_steps = done + fit
        return self._budget_callback(costs, plan, deadline), fitted

    def _budget_spent(
        self,
        trainer: SentenceTransformerTrainer,
        costs: _Costs,
        plan: RunPlan,
        done: int,
        deadline: float,
        left: float,
    ) -> BudgetCallback:
        """A resumed run whose budget is spent: plan no further step, so it finishes from its checkpoint."""
        logger.info(
            "time budget: %s of %s left after the %s the earlier runs spent, too little for a step (~%.2fs); "
            "finishing from the checkpoint at step %d",
            format_seconds(max(0.0, left)),
            format_seconds(self.config.budget_minutes * 60),
            format_seconds(self.earlier),
            costs.step,
            done,
        )
        trainer.args.max_steps = done
        trainer.args.eval_on_start = False
        return self._budget_callback(costs, plan, deadline)

    @staticmethod
    def _budget_callback(costs: _Costs, plan: RunPlan, deadline: float) -> BudgetCallback:
        return BudgetCallback(
            deadline=deadline,
            step_seconds=costs.step,
            eval_seconds=costs.eval,
            save_seconds=costs.save,
            final_seconds=costs.save,
            has_eval=plan.has_dev,
        )

    def _measure_costs(
        self, trainer: SentenceTransformerTrainer, model: SentenceTransformer, plan: RunPlan
    ) -> _Costs:
        """Seconds of one step and one dev evaluation (both timed) and of one checkpoint."""
        from transformers import set_seed

        columns = self.train_cols.as_dict()
        n = min(plan.batch_size, len(self.train_cols))
        timing = time_one_step(trainer, [{k: v[i] for k, v in columns.items()} for i in range(n)])
        set_seed(self.config.seed)  # the timed step consumed random numbers (dropout)
        dev_batches = math.ceil(len(self.dev_cols) / plan.batch_size)
        return _Costs(
            step=timing.step_seconds,
            eval=dev_batches * timing.forward_seconds * 1.2,
            save=estimated_save_seconds(model),
        )

    def _too_small(
        self, costs: _Costs, plan: RunPlan, setup_s: float, *, full_s: float
    ) -> BudgetTooSmallError:
        needed = (setup_s + costs.step + costs.eval + 2 * costs.save) / 60
        suggestion = math.ceil(needed * 10) / 10 if needed < 1 else math.ceil(needed)
        full = (setup_s + full_s + costs.eval + 2 * costs.save) / 60
        return BudgetTooSmallError(
            f"a time budget of {self.config.budget_minutes:g} min cannot fit one training step: "
            f"on this machine ({self.hardware.device}, {self.hardware.precision.value}, "
            f"batch {plan.batch_size}, max_seq_length {self.config.max_seq_length}) one "
            f"optimisation step takes about {costs.step:.1f}s, a dev evaluation about "
            f"{costs.eval:.1f}s and saving about {2 * costs.save:.1f}s, after {setup_s:.1f}s of "
            f"loading and setup. Give at least {suggestion:g} min (the full run of "
            f"{plan.max_steps} steps needs about {full:.1f} min), or lower the batch size or "
            "max_seq_length.",
            step_seconds=costs.step,
            minimum_minutes=needed,
        )

    def _stopped_because(
        self,
        step: int,
        planned: int,
        plan: RunPlan,
        budget_cb: BudgetCallback | None,
        fitted: bool,
        early_cb: Any,
    ) -> StoppedBecause:
        """Why the run ended; a run that reached its planned last step is not "stopped early"."""
        if step < planned:
            if budget_cb is not None and budget_cb.triggered:
                return StoppedBecause.BUDGET
            patience_used = early_cb is not None and (
                early_cb.early_stopping_patience_counter >= early_cb.early_stopping_patience
            )
            return StoppedBecause.EARLY_STOPPING if patience_used else StoppedBecause.COMPLETED
        if fitted:
            return StoppedBecause.BUDGET
        if plan.capped_by_max_steps:
            return StoppedBecause.MAX_STEPS
        return StoppedBecause.COMPLETED
