"""The training stage, with the real bundled model on tiny synthetic data.

Runs are tiny (max_seq_length 32, batch 8, a few steps) and use one torch
thread, which on a shared 2-core machine is both faster and steadier than two.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from fieldtune.models import BASE_RECORD
from fieldtune.types import Pair, PairKind

pytest.importorskip("datasets")
pytest.importorskip("accelerate")

from fieldtune.training import (  # noqa: E402
    BudgetTooSmallError,
    StoppedBecause,
    TrainConfig,
    TrainConfigError,
    TrainingDataError,
    train,
)
from fieldtune.training.artifacts import latest_checkpoint, resumable_checkpoint  # noqa: E402
from fieldtune.training.data import copies_for_weight, prepare_splits  # noqa: E402

WORDS = [
    "lattice",
    "module",
    "ring",
    "field",
    "vector",
    "tensor",
    "kernel",
    "image",
    "basis",
    "orbit",
    "sheaf",
    "stalk",
    "germ",
    "fibre",
    "bundle",
    "chain",
    "cycle",
    "boundary",
    "homology",
    "functor",
    "category",
    "limit",
    "colimit",
    "adjoint",
    "monad",
    "operad",
    "quiver",
    "poset",
    "filter",
    "ideal",
    "radical",
    "socle",
    "torsion",
    "flat",
    "projective",
    "injective",
]


def synthetic(
    n_chunks: int = 20, anchors_per_chunk: int = 2, seed: int = 0
) -> tuple[dict[str, str], list[Pair]]:
    """Chunks of random words and made-up anchor names: associations the model has to learn."""
    rng = random.Random(seed)
    chunks = {f"c{i}": " ".join(rng.choice(WORDS) for _ in range(24)) for i in range(n_chunks)}
    pairs = [
        Pair(
            anchor=f"{rng.choice(WORDS)} {rng.choice(WORDS)} {k}",
            positive_id=f"c{k % n_chunks}",
            kind=PairKind.CONCEPT_NAME,
            group=str(k),
        )
        for k in range(n_chunks * anchors_per_chunk)
    ]
    return chunks, pairs


def tiny_config(**overrides: object) -> TrainConfig:
    options: dict[str, object] = {
        "max_seq_length": 32,
        "batch_size": 8,
        "eval_every_steps": 2,
        "learning_rate": 2e-4,
        "num_threads": 1,
    }
    options.update(overrides)
    return TrainConfig(**options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data() -> tuple[dict[str, str], list[Pair], list[Pair]]:
    chunks, pairs = synthetic()
    dev = pairs[::5]
    return chunks, [p for p in pairs if p not in dev], dev


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, data):
    chunks, train_pairs, dev_pairs = data
    out = tmp_path_factory.mktemp("tiny")
    return train(
        train_pairs, dev_pairs, chunks, out_dir=out, config=tiny_config(), progress=False
    ), out


# ---- options and data, no training -------------------------------------------------------------


def test_config_errors_name_the_option_and_valid_values() -> None:
    with pytest.raises(TrainConfigError, match="loss must be one of mnrl, cached_mnrl"):
        TrainConfig(loss="infonce")  # type: ignore[arg-type]
    with pytest.raises(TrainConfigError, match="matryoshka_weights has 1 values"):
        TrainConfig(matryoshka_dims=(384, 128), matryoshka_weights=(1.0,))
    with pytest.raises(TrainConfigError, match="budget_minutes"):
        TrainConfig(budget_minutes=-1)
    with pytest.raises(TypeError):
        TrainConfig("minilm")  # type: ignore[misc]  # keyword-only
    assert TrainConfig(precision="BF16", loss="Cached_MNRL").loss == "cached_mnrl"  # type: ignore[arg-type]


def test_weights_resample_deterministically() -> None:
    assert copies_for_weight(1.0, ("a",)) == 1
    assert copies_for_weight(3.0, ("a",)) == 3
    assert copies_for_weight(0.0, ("a",)) == 0
    draws = [copies_for_weight(0.5, (i,)) for i in range(2000)]
    assert draws == [copies_for_weight(0.5, (i,)) for i in range(2000)]
    assert 900 < sum(draws) < 1100


def test_unknown_chunk_ids_are_named(data) -> None:
    chunks, train_pairs, dev_pairs = data
    bad = [
        *train_pairs,
        Pair(anchor="orphan", positive_id="nope#3", kind=PairKind.TITLE, group="x"),
    ]
    with pytest.raises(TrainingDataError, match=r"train pair 32 .*'nope#3'"):
        prepare_splits(bad, dev_pairs, chunks, seed=0, use_hard_negatives=True, loss="mnrl")
    with pytest.raises(TrainingDataError, match="at least 2"):
        prepare_splits(train_pairs[:1], dev_pairs, chunks, seed=0, use_hard_negatives=True, loss="mnrl")


def test_hard_negatives_add_a_column_and_cycle(data) -> None:
    chunks, train_pairs, _ = data
    # train_pairs[:3] point at c1, c2, c3; c2 is a bad "negative" of the second pair: skipped.
    with_negs = [
        Pair(p.anchor, p.positive_id, p.kind, p.group, weight=2.0, negative_ids=("c2", "c9"))
        for p in train_pairs[:3]
    ]
    train_cols, _ = prepare_splits(
        with_negs + train_pairs[3:5], [], chunks, seed=0, use_hard_negatives=True, loss="mnrl"
    )
    assert len(train_cols) == 3 * 2 + 2
    assert train_cols["negative"][:4] == [chunks["c2"], chunks["c9"], chunks["c9"], chunks["c9"]]
    assert all(
        neg != pos for neg, pos in zip(train_cols["negative"], train_cols["positive"], strict=True)
    )
    plain, _ = prepare_splits(with_negs, [], chunks, seed=0, use_hard_negatives=False, loss="mnrl")
    assert "negative" not in plain.as_dict()


def test_checkpoints_of_another_run_are_not_resumed(tmp_path: Path) -> None:
    directory = tmp_path / "checkpoints"
    assert resumable_checkpoint(directory, {"run": 1}) is None
    complete = directory / "checkpoint-4"
    complete.mkdir()
    for name in ("modules.json", "optimizer.pt", "scheduler.pt", "model.safetensors"):
        (complete / name).write_bytes(b"x")
    (complete / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    (directory / "checkpoint-6").mkdir()  # interrupted while saving: no trainer_state.json
    assert latest_checkpoint(directory) == complete
    assert resumable_checkpoint(directory, {"run": 1}) == complete
    assert resumable_checkpoint(directory, {"run": 2}) is None
    assert not complete.exists()


def test_default_schedule_evaluates_every_tenth_of_an_epoch() -> None:
    from fieldtune.training.setup import plan_run

    plan = plan_run(TrainConfig(), n_examples=32_000, has_dev=True, resuming=False)
    assert (plan.steps_per_epoch, plan.max_steps, plan.eval_every) == (1000, 1000, 100)
    assert plan_run(TrainConfig(), n_examples=640, has_dev=True, resuming=False).eval_every == 10
    capped = plan_run(
        TrainConfig(max_steps=50, epochs=2), n_examples=3200, has_dev=False, resuming=True
    )
    assert (capped.max_steps, capped.capped_by_max_steps, capped.eval_on_start) == (50, True, False)


def test_a_diverging_loss_stops_with_advice() -> None:
    from fieldtune.training import TrainingDivergedError
    from fieldtune.training.callbacks import ProgressCallback

    callback = ProgressCallback(batch_size=8, show_bar=False, precision="bf16")
    state = type("State", (), {"global_step": 7, "max_steps": 10})()
    with pytest.raises(TrainingDivergedError, match="step 7 .*precision fp32"):
        callback.on_log(None, state, None, logs={"loss": float("nan")})  # type: ignore[arg-type]


# ---- real training ---------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_run_writes_a_plain_sentence_transformers_model(tiny_run) -> None:
    result, out = tiny_run
    model_dir = out / "model"
    assert result.model_dir == model_dir and model_dir.is_dir()
    assert not (out / "checkpoints").exists()  # removed once the model is written
    assert not list(out.glob("model.tmp-*"))
    record = json.loads((model_dir / BASE_RECORD).read_text())
    assert record["base_model"] == "minilm"
    assert record["matryoshka_dims"] == [384, 256, 128, 64]
    assert record["prompts"] == {"query": "query: ", "document": "passage: "}
    assert record["train_pairs"] == 32 and record["dev_pairs"] == 8
    assert record["steps"] == result.steps == 4
    assert record["stopped_because"] == "completed"
    assert record["best_eval_loss"] == pytest.approx(
        min(p.eval_loss for p in result.history if p.step > 0)
    )
    assert [p.step for p in result.history if p.eval_loss is not None] == [0, 2, 4]


@pytest.mark.slow
def test_saved_model_applies_prompts_and_differs_from_base(tiny_run) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    from fieldtune.models import resolve_model

    _, out = tiny_run
    model = SentenceTransformer(str(out / "model"), device="cpu")
    assert model.prompts["query"] == "query: " and model.prompts["document"] == "passage: "
    assert model.default_prompt_name is None
    assert model.max_seq_length == 256  # the base model's inference limit, not the training one
    assert next(model.parameters()).dtype == torch.float32
    texts = ["Kostka numbers"]
    np.testing.assert_allclose(
        model.encode_query(texts), model.encode(["query: Kostka numbers"]), atol=1e-6
    )
    np.testing.assert_allclose(
        model.encode_document(texts), model.encode(["passage: Kostka numbers"]), atol=1e-6
    )
    base = SentenceTransformer(resolve_model("minilm").location, device="cpu")
    tuned, original = model.state_dict(), base.state_dict()
    changed = [name for name in original if not torch.equal(tuned[name], original[name])]
    assert len(changed) > len(original) // 2


def test_budget_too_small_says_what_would_work(tmp_path: Path, data) -> None:
    chunks, train_pairs, dev_pairs = data
    with pytest.raises(
        BudgetTooSmallError, match=r"one optimisation step takes about [\d.]+s.*Give at least"
    ) as error:
        train(
            train_pairs,
            dev_pairs,
            chunks,
            out_dir=tmp_path,
            config=tiny_config(budget_minutes=0.001),
            progress=False,
        )
    assert error.value.step_seconds > 0 and error.value.minimum_minutes > 0.001
    assert not (tmp_path / "model").exists()


@pytest.mark.slow
def test_budget_stops_training_and_keeps_the_best_model(tmp_path: Path) -> None:
    chunks, pairs = synthetic(
        n_chunks=200, anchors_per_chunk=10
    )  # 2000 pairs: 250 steps, far beyond the budget
    budget_minutes = 0.25
    result = train(
        pairs[10:],
        pairs[:10],
        chunks,
        out_dir=tmp_path,
        config=tiny_config(budget_minutes=budget_minutes, eval_every_steps=5),
        progress=False,
    )
    assert result.stopped_because is StoppedBecause.BUDGET
    assert 1 <= result.steps < 248
    assert result.seconds < budget_minutes * 60 + 10
    assert result.best_eval_loss is not None
    assert (tmp_path / "model" / BASE_RECORD).is_file()


@pytest.mark.slow
def test_early_stopping_when_dev_loss_stops_improving(tmp_path: Path, data) -> None:
    chunks, pairs = synthetic()
    # Dev pairs send each anchor to the *next* chunk: what training teaches makes them worse.
    dev = [
        Pair(p.anchor, f"c{(int(p.positive_id[1:]) + 1) % 20}", p.kind, p.group) for p in pairs[::5]
    ]
    result = train(
        pairs,
        dev,
        chunks,
        out_dir=tmp_path,
        config=tiny_config(epochs=6, early_stopping_patience=2),
        progress=False,
    )
    assert result.stopped_because is StoppedBecause.EARLY_STOPPING
    assert result.steps < 30
    evals = [p for p in result.history if p.eval_loss is not None and p.step > 0]
    assert result.best_step == min(evals, key=lambda p: p.eval_loss).step
    assert result.best_step < result.steps


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_checkpoint(
    tmp_path: Path, data, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fieldtune.training.callbacks import ProgressCallback

    chunks, train_pairs, dev_pairs = data
    config = tiny_config(epochs=2, precision="fp32")  # 8 steps; also covers the fp32 path

    def interrupt_after_step_4(self, args, state, control, **kwargs):
        if state.global_step == 4:
            raise KeyboardInterrupt

    monkeypatch.setattr(ProgressCallback, "on_save", interrupt_after_step_4)
    with pytest.raises(KeyboardInterrupt):
        train(train_pairs, dev_pairs, chunks, out_dir=tmp_path, config=config, progress=False)
    assert (tmp_path / "checkpoints" / "checkpoint-4").is_dir()
    assert not (tmp_path / "model").exists()
    monkeypatch.undo()

    result = train(train_pairs, dev_pairs, chunks, out_dir=tmp_path, config=config, progress=True)
    assert result.resumed_from is not None and result.resumed_from.endswith("checkpoint-4")
    assert result.steps == 8
    assert result.precision == "fp32"
    assert [p.step for p in result.history if p.eval_loss is not None] == [0, 2, 4, 6, 8]
    record = json.loads((tmp_path / "model" / BASE_RECORD).read_text())
    assert record["resumed_from"] == result.resumed_from and record["steps"] == 8
