"""Query-side adaptation: train only the query encoder against the base's frozen document vectors.

The recipe of issue 14's probe. Documents keep the base model's embeddings
(computed once by the caller, never re-encoded); a trainable copy of the base
learns to embed queries so that its cosines against each query's candidates
follow a teacher's scores (or the user's judgements). A step encodes 32 short
queries and nothing else, which is why it costs ~2 s on one CPU core where a
full-model pair step costs 3-17 s.

:func:`train_query_side` composes small steps: validate the examples against
the document vectors, load the base, run the loop (a listwise loss from the
registry at every Matryoshka dimension, AdamW with linear warm-up and decay,
the step count fitted to the time budget from a timed first step, dev loss
with early stopping) and publish the model form of
:mod:`fieldtune.training.query_model` with its ``fieldtune.json``.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fieldtune.evaluate.systems import default_dims
from fieldtune.hardware import cpu_count, cuda_available, threads_for_busy_cpu, torch_threads
from fieldtune.hashing import seeded_int
from fieldtune.model_record import ModelRecord
from fieldtune.models import embedding_dimension, load_model
from fieldtune.training import artifacts
from fieldtune.training.callbacks import format_seconds
from fieldtune.training.config import StoppedBecause, TrainDevice
from fieldtune.training.errors import BudgetTooSmallError, TrainConfigError, TrainingDataError, TrainingDivergedError
from fieldtune.training.losses import LOSSES, ListwiseLoss
from fieldtune.training.query_model import (
    FINGERPRINT_KEY,
    QUERY_SIDE_KEY,
    assemble,
    average_query_route,
    document_fingerprint,
    trainable_copy,
)
from fieldtune.training.query_side_config import QuerySideConfig
from fieldtune.training.runtime import estimated_save_seconds
from fieldtune.types import ScoredQuery

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger("fieldtune.training")

__all__ = ["QuerySideConfig", "QuerySideResult", "average_query_route", "train_query_side"]


@dataclass(frozen=True)
class QuerySideResult:
    """What :func:`train_query_side` did; ``record`` is the ``fieldtune.json`` it wrote."""

    model_dir: Path
    steps: int
    planned_steps: int
    best_step: int | None
    best_dev_loss: float | None
    stopped_because: StoppedBecause
    seconds: float
    record: ModelRecord


#: One batch: query texts, candidate rows, teacher scores, candidate mask, positive mask.
_Batch = tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class _Tensors:
    """Examples as padded tensors: candidate rows into the document matrix, teacher scores, masks."""

    texts: list[str]
    rows: torch.Tensor  # [N, K] long, 0 where padded
    teacher: torch.Tensor  # [N, K] float32
    mask: torch.Tensor  # [N, K] bool
    positive: torch.Tensor  # [N, K] bool

    def batch(self, index: torch.Tensor) -> _Batch:
        return ([self.texts[i] for i in index.tolist()], self.rows[index], self.teacher[index], self.mask[index],
                self.positive[index])


def _check_example(example: ScoredQuery, where: str, vectors: Mapping[str, np.ndarray]) -> None:
    if not example.candidate_ids:
        raise TrainingDataError(f"{where} ({example.query_id}) has no candidates")
    if len(example.candidate_ids) != len(example.teacher_scores):
        raise TrainingDataError(f"{where} ({example.query_id}) has {len(example.candidate_ids)} candidates but "
                                f"{len(example.teacher_scores)} teacher scores")
    if not all(math.isfinite(s) for s in example.teacher_scores):
        raise TrainingDataError(f"{where} ({example.query_id}) has a teacher score that is not finite")
    missing = [c for c in example.candidate_ids if c not in vectors]
    if missing:
        raise TrainingDataError(f"{where} ({example.query_id}) names candidates without a document vector: "
                                f"{', '.join(missing[:3])}")
    strays = set(example.positive_ids) - set(example.candidate_ids)
    if strays:
        raise TrainingDataError(f"{where} ({example.query_id}) has positives that are not candidates: "
                                f"{', '.join(sorted(strays)[:3])}")


def _document_matrix(
    examples: Sequence[ScoredQuery], vectors: Mapping[str, np.ndarray], dimension: int
) -> tuple[torch.Tensor, dict[str, int]]:
    """The candidates' document vectors as one float32 matrix (first-seen order) and id -> row."""
    index: dict[str, int] = {}
    for example in examples:
        for candidate in example.candidate_ids:
            index.setdefault(candidate, len(index))
    matrix = np.stack([np.asarray(vectors[c], dtype=np.float32).reshape(-1) for c in index]) if index else None
    if matrix is None or matrix.shape[1] != dimension:
        got = "none" if matrix is None else str(matrix.shape[1])
        raise TrainingDataError(f"document vectors have dimension {got}; the base model embeds in {dimension}")
    return torch.from_numpy(matrix), index


def _tensors(examples: Sequence[ScoredQuery], index: Mapping[str, int]) -> _Tensors:
    width = max((len(e.candidate_ids) for e in examples), default=1)
    shape = (len(examples), width)
    rows, teacher = torch.zeros(shape, dtype=torch.long), torch.zeros(shape, dtype=torch.float32)
    mask, positive = torch.zeros(shape, dtype=torch.bool), torch.zeros(shape, dtype=torch.bool)
    for i, example in enumerate(examples):
        k, positives = len(example.candidate_ids), set(example.positive_ids)
        rows[i, :k] = torch.tensor([index[c] for c in example.candidate_ids])
        teacher[i, :k] = torch.tensor(example.teacher_scores, dtype=torch.float32)
        mask[i, :k] = True
        positive[i, :k] = torch.tensor([c in positives for c in example.candidate_ids])
    return _Tensors([e.text for e in examples], rows, teacher, mask, positive)


def _resolve_dims(config: QuerySideConfig, dimension: int) -> tuple[list[int], list[float]]:
    dims = list(config.matryoshka_dims) if config.matryoshka_dims else default_dims(dimension)
    weights = list(config.matryoshka_weights) if config.matryoshka_weights else [1.0] * len(dims)
    if len(weights) != len(dims):
        raise TrainConfigError(f"matryoshka_weights has {len(weights)} values for {len(dims)} dimensions {dims}")
    if max(dims) > dimension:
        raise TrainConfigError(f"matryoshka_dims {[d for d in dims if d > dimension]} exceed the model's "
                               f"embedding dimension {dimension}")
    return dims, weights


def _threads(config: QuerySideConfig, device: str) -> int | None:
    """The config's thread count, else the busy-CPU rule; never more than the machine's cores."""
    if device != "cpu":
        return config.num_threads
    threads = config.num_threads or threads_for_busy_cpu()
    return None if threads is None else min(threads, cpu_count())


def _device(config: QuerySideConfig) -> str:
    if config.device is TrainDevice.CUDA and not cuda_available():
        raise TrainConfigError(f"device cuda was asked for, but torch {torch.__version__} sees no CUDA device")
    auto_cuda = config.device is TrainDevice.AUTO and cuda_available()
    return "cuda" if config.device is TrainDevice.CUDA or auto_cuda else "cpu"


def linear_schedule(done: int, total: int, warmup_ratio: float) -> float:
    """Learning-rate factor of the step after ``done`` steps: linear warm-up over ``ceil(ratio * total)`` steps,
    then linear decay to 0 at ``total``. Unlike transformers' schedule the first step's factor is not 0:
    a step costs seconds on a CPU, and the first one should already learn.
    """
    warmup = math.ceil(warmup_ratio * total)
    if done < warmup:
        return (done + 1) / (warmup + 1)
    return max(0.0, (total - done) / max(1, total - warmup))


def train_query_side(
    examples: Sequence[ScoredQuery],
    document_vectors: Mapping[str, np.ndarray],
    *,
    model_dir: Path,
    config: QuerySideConfig,
    dev_examples: Sequence[ScoredQuery] = (),
    progress: bool = True,
) -> QuerySideResult:
    """Adapt ``config.base``'s query encoder to ``examples`` and write the query-side model to ``model_dir``.

    ``document_vectors`` maps every candidate id to the base model's unit-norm
    float32 *document* embedding (``Encoder(base).encode(texts, kind="document")``);
    they are read once and never re-encoded. ``dev_examples`` (optional) give the
    dev loss that drives early stopping and picks the state that is saved.
    ``model_dir`` is written atomically (all or nothing).

    Raises :class:`TrainingDataError` for examples that cannot be trained on,
    :class:`TrainConfigError` for options the model or machine cannot honour,
    :class:`BudgetTooSmallError` when ``config.budget_minutes`` cannot fit one step.
    """
    started = time.monotonic()
    if not examples:
        raise TrainingDataError("query-side adaptation needs at least one training query")
    for where, group in (("training query", examples), ("dev query", dev_examples)):
        for i, example in enumerate(group):
            _check_example(example, f"{where} {i}", document_vectors)
    spec = LOSSES[config.loss]
    if spec.listwise is None:  # the config refuses such names; a registry changed since would land here
        raise TrainConfigError(f"loss {config.loss!r} has no listwise form for query-side training")
    if config.loss == "labelled" and not any(e.positive_ids for e in examples):
        raise TrainingDataError("the labelled loss needs judged positives; these training queries have none")
    device = _device(config)
    with torch_threads(_threads(config, device)):
        torch.manual_seed(config.seed)
        base = load_model(config.base, device=device, model_kwargs={"dtype": torch.float32})
        dimension = embedding_dimension(base)
        dims, weights = _resolve_dims(config, dimension)
        documents, index = _document_matrix([*examples, *dev_examples], document_vectors, dimension)
        run = _Loop(config, spec.listwise, base, documents.to(device), dims, weights, started, progress)
        outcome = run.fit(_tensors(examples, index), _tensors(dev_examples, index) if dev_examples else None)
        return _publish(run, outcome, base, Path(model_dir), n_train=len(examples), n_dev=len(dev_examples))


@dataclass(frozen=True)
class _Outcome:
    steps: int
    planned: int
    best_step: int | None
    best_dev: float | None
    stopped: StoppedBecause


class _Loop:
    """The optimisation loop of one :func:`train_query_side` call."""

    def __init__(
        self,
        config: QuerySideConfig,
        loss: ListwiseLoss,
        base: SentenceTransformer,
        documents: torch.Tensor,
        dims: list[int],
        weights: list[float],
        started: float,
        progress: bool,
    ) -> None:
        self.config, self.loss, self.dims, self.weights = config, loss, dims, weights
        self.started, self.progress = started, progress
        self.deadline = started + config.budget_minutes * 60 if config.budget_minutes else None
        self.student = trainable_copy(base)
        self.inference_max_length = self.student.max_seq_length
        self.student.max_seq_length = config.max_seq_length
        self.prompt = (base.prompts or {}).get("query") or None
        # Truncated and renormalised once per dimension: the documents never change.
        self.documents = {d: torch.nn.functional.normalize(documents[:, :d], dim=-1) for d in dims}
        params = [p for p in self.student.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
        self.total = 1  # planned steps: set by fit(), lowered when the budget fits fewer
        self.save_seconds = 0.0  # measured when there is a budget to fit

    def _loss(self, texts: list[str], rows: torch.Tensor, teacher: torch.Tensor, mask: torch.Tensor,
              positive: torch.Tensor) -> torch.Tensor:
        device = self.student.device
        features = self.student.preprocess(texts, prompt=self.prompt)
        features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        queries = self.student(features)["sentence_embedding"]
        rows, teacher, mask, positive = rows.to(device), teacher.to(device), mask.to(device), positive.to(device)
        total = queries.new_zeros(())
        for dim, weight in zip(self.dims, self.weights, strict=True):
            q = torch.nn.functional.normalize(queries[:, :dim], dim=-1)
            scores = torch.einsum("bd,bkd->bk", q, self.documents[dim][rows])
            total = total + weight * self.loss(scores, teacher, mask, self.config, positive=positive)
        return total

    def _dev_loss(self, dev: _Tensors) -> float:
        self.student.eval()
        total, n = 0.0, len(dev.texts)
        with torch.no_grad():
            for start in range(0, n, self.config.batch_size):
                index = torch.arange(start, min(n, start + self.config.batch_size))
                total += float(self._loss(*dev.batch(index))) * len(index)
        self.student.train()
        return total / n

    def fit(self, train: _Tensors, dev: _Tensors | None) -> _Outcome:
        config = self.config
        n = len(train.texts)
        batch = min(config.batch_size, n)
        per_epoch = math.ceil(n / batch)
        epoch_steps = max(1, math.ceil(config.epochs * per_epoch))
        capped = config.max_steps is not None and config.max_steps < epoch_steps
        planned = self.total = config.max_steps if capped and config.max_steps else epoch_steps
        # The factor is read at every step from self.total, so fitting the plan to the budget refits the decay.
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda done: linear_schedule(done, self.total, config.warmup_ratio)
        )
        eval_every = config.eval_every_steps or max(10, round(0.1 * per_epoch))
        log_every = max(1, min(10, eval_every))
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        bad_evals, step, step_seconds, loop_started = 0, 0, 0.0, time.monotonic()
        stopped: StoppedBecause | None = None
        losses: list[float] = []
        self.student.train()
        while step < self.total and stopped is None:
            epoch, within = divmod(step, per_epoch)
            generator = torch.Generator().manual_seed(seeded_int(config.seed, f"query-side epoch {epoch}") % 2**63)
            index = torch.randperm(n, generator=generator)[within * batch:(within + 1) * batch]
            began = time.monotonic()
            losses.append(self._step(train.batch(index), step))
            took = time.monotonic() - began
            step += 1
            step_seconds = took if step == 1 else 0.7 * step_seconds + 0.3 * took
            if step == 1 and self.deadline is not None:
                self._fit_budget(took, dev, eval_every)
            if step % log_every == 0 or step == self.total:
                self._log(step, losses, loop_started, batch)
                losses = []
            if dev is not None and (step % eval_every == 0 or step == self.total):
                dev_loss = self._dev_loss(dev)
                improved = best is None or dev_loss < best[0]
                logger.info("step %d: dev loss %.4f%s", step, dev_loss, " (best so far)" if improved else "")
                if improved:
                    best, bad_evals = (dev_loss, step, copy.deepcopy(self.student.state_dict())), 0
                else:
                    bad_evals += 1
                    if config.early_stopping_patience and bad_evals >= config.early_stopping_patience:
                        stopped = StoppedBecause.EARLY_STOPPING
            if stopped is None and step < self.total and self._out_of_time(step_seconds, dev):
                stopped = StoppedBecause.BUDGET
        if stopped is None:
            fitted = self.total < planned
            stopped = (StoppedBecause.BUDGET if fitted else StoppedBecause.MAX_STEPS if capped
                       else StoppedBecause.COMPLETED)
        if best is not None:
            self.student.load_state_dict(best[2])
        return _Outcome(step, self.total, best[1] if best else None, best[0] if best else None, stopped)

    def _step(self, batch: _Batch, step: int) -> float:
        loss = self._loss(*batch)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(f"the query-side loss became {float(loss)} at step {step + 1}; "
                                        "lower the learning rate or raise the student temperature")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def _reserve(self, step_seconds: float, dev: _Tensors | None) -> float:
        """Seconds kept for the final dev evaluation and the save (two copies of the model)."""
        return self._dev_batches(dev) * step_seconds / 2 + self.save_seconds

    def _fit_budget(self, step_seconds: float, dev: _Tensors | None, eval_every: int) -> None:
        """After the timed first step: fail if even it overran, else fit the step count (and schedule) to the budget."""
        if self.deadline is None:
            return
        self.save_seconds = estimated_save_seconds(self.student)
        now = time.monotonic()
        reserve = self._reserve(step_seconds, dev)
        left = self.deadline - now
        if left < reserve:
            needed = (now - self.started + reserve) / 60
            raise BudgetTooSmallError(
                f"a time budget of {self.config.budget_minutes:g} min cannot fit one query-side step: loading took "
                f"{now - self.started - step_seconds:.1f}s, one step {step_seconds:.1f}s and saving needs about "
                f"{self.save_seconds:.1f}s. Give at least {math.ceil(needed * 10) / 10:g} min.",
                step_seconds=step_seconds,
                minimum_minutes=needed,
            )
        per_step = step_seconds * (1 + 0.5 * self._dev_batches(dev) / eval_every)
        fit = 1 + max(0, int((left - reserve) / per_step))
        if fit < self.total:
            logger.info("time budget %s: one step takes ~%.2fs; %d of the %d planned steps fit, the learning-rate "
                        "schedule is fitted to them", format_seconds(left), step_seconds, fit, self.total)
            self.total = fit

    def _dev_batches(self, dev: _Tensors | None) -> int:
        return 0 if dev is None else math.ceil(len(dev.texts) / self.config.batch_size)

    def _out_of_time(self, step_seconds: float, dev: _Tensors | None) -> bool:
        if self.deadline is None:
            return False
        now = time.monotonic()
        if now + step_seconds + self._reserve(step_seconds, dev) <= self.deadline:
            return False
        logger.info("time budget: %s left, one more step and the final save would not fit; stopping",
                    format_seconds(self.deadline - now))
        return True

    def _log(self, step: int, losses: list[float], loop_started: float, batch: int) -> None:
        elapsed = time.monotonic() - loop_started
        rate = step * batch / elapsed if elapsed > 0 else 0.0
        eta = format_seconds(elapsed / step * (self.total - step))
        level = logging.INFO if self.progress else logging.DEBUG
        logger.log(level, "step %d/%d  loss %.4f  %.1f queries/s  elapsed %s  ETA %s", step, self.total,
                   sum(losses) / max(1, len(losses)), rate, format_seconds(elapsed), eta)


def _publish(run: _Loop, outcome: _Outcome, base: SentenceTransformer, model_dir: Path, *, n_train: int,
             n_dev: int) -> QuerySideResult:
    """Assemble the Router model, write it with its record, and say what happened."""
    config = run.config
    run.student.max_seq_length = run.inference_max_length
    run.student.eval()
    model = assemble(run.student, base)
    seconds = time.monotonic() - run.started
    record = ModelRecord(
        base_model=config.base,
        matryoshka_dims=tuple(run.dims),
        prompts={k: v for k, v in (base.prompts or {}).items() if v},
        train_examples=n_train,
        steps=outcome.steps,
        best_step=outcome.best_step,
        best_eval_loss=outcome.best_dev,
        stopped_because=outcome.stopped.value,
        seed=config.seed,
        precision="fp32",
        device=str(model.device),
        seconds=round(seconds, 1),
        config={**config.to_dict(), "planned_steps": outcome.planned,
                "inference_max_seq_length": run.inference_max_length},
        extra={QUERY_SIDE_KEY: True, FINGERPRINT_KEY: document_fingerprint(model), "train_queries": n_train,
               "dev_queries": n_dev},
    )
    artifacts.remove_stale(model_dir)
    artifacts.publish_model(model, model_dir, record)
    logger.info("query-side training finished after %d steps (%s) in %s; best dev loss %s", outcome.steps,
                outcome.stopped.value, format_seconds(seconds),
                "n/a" if outcome.best_dev is None else f"{outcome.best_dev:.4f}")
    return QuerySideResult(model_dir, outcome.steps, outcome.planned, outcome.best_step, outcome.best_dev,
                           outcome.stopped, seconds, record)
