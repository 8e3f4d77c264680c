"""The loss registry and the columns each loss is given (no model is loaded)."""

from __future__ import annotations

import functools
import math
from types import SimpleNamespace

import pytest

from fieldtune.hashing import texts_sha256
from fieldtune.registry import Registry, UnknownNameError
from fieldtune.training import TrainConfig, TrainConfigError, TrainingDataError
from fieldtune.training import data as training_data
from fieldtune.training.data import build_columns, choose_layout, column_role, prepare_splits
from fieldtune.training.losses import LOSSES, LossInput, LossSpec
from fieldtune.types import Pair, PairKind

CHUNKS = {f"c{i}": f"chunk text number {i}" for i in range(6)}


def _pair(i: int, **extra) -> Pair:
    return Pair(f"anchor {i}", f"c{i}", PairKind.TITLE, f"d{i}", **extra)


def _never_built(model, config):  # a spec's builder; these tests never build a loss
    raise AssertionError("not built in these tests")


SCORED = LossSpec(name="scored", title="Scored", inputs=(LossInput.SCORED_CANDIDATES,), build=_never_built)


def test_registry_holds_todays_losses_rejects_duplicates_and_suggests() -> None:
    assert list(LOSSES) == ["mnrl", "cached_mnrl", "kl", "margin_mse", "labelled"]
    assert LOSSES["mnrl"].title == "MultipleNegativesRankingLoss"
    assert [LOSSES[n].title for n in ("kl", "margin_mse", "labelled")] == [
        "DistillKLDivLoss", "MarginMSELoss", "MultipleNegativesRankingLoss"
    ]
    assert [n for n, spec in LOSSES.items() if spec.listwise is not None] == ["kl", "margin_mse", "labelled"]
    assert LOSSES["cached_mnrl"].title == "CachedMultipleNegativesRankingLoss"
    with pytest.raises(ValueError, match="already registered"):
        LOSSES.register("mnrl", LOSSES["mnrl"])
    with pytest.raises(UnknownNameError, match="did you mean 'mnrl'"):
        LOSSES["mnlr"]


def test_config_accepts_registered_names_only_and_suggests() -> None:
    assert TrainConfig().loss == "mnrl"
    assert TrainConfig(loss=" CACHED_MNRL ").loss == "cached_mnrl"
    assert TrainConfig(loss="cached_mnrl").to_dict()["loss"] == "cached_mnrl"
    names = "mnrl, cached_mnrl, kl, margin_mse, labelled"
    with pytest.raises(TrainConfigError, match=rf"loss must be one of {names}; got 'cached_mrnl' \(did you"):
        TrainConfig(loss="cached_mrnl")


def test_mnrl_gets_todays_columns() -> None:
    plain = [_pair(i) for i in range(4)]
    mined = [_pair(0, negative_ids=("c5",)), *plain[1:]]
    spec = LOSSES["mnrl"]
    assert choose_layout(spec, plain, use_hard_negatives=True) is LossInput.PAIRS
    assert choose_layout(spec, mined, use_hard_negatives=False) is LossInput.PAIRS
    assert choose_layout(spec, mined, use_hard_negatives=True) is LossInput.PAIRS_WITH_NEGATIVES
    train, dev = prepare_splits(mined, mined[:2], CHUNKS, seed=0, use_hard_negatives=True, loss="mnrl")
    assert list(train.as_dict()) == list(dev.as_dict()) == ["anchor", "positive", "negative"]
    # Same digest as before the columns followed the loss: checkpoints of earlier runs still resume.
    old = [("anchor", train["anchor"]), ("positive", train["positive"]), ("negative", train["negative"])]
    assert train.digest() == texts_sha256(text for name, values in old for text in (name, *values))
    empty = build_columns([], CHUNKS, split="dev", seed=0, layout=LossInput.PAIRS_WITH_NEGATIVES, apply_weights=False)
    assert list(empty.as_dict()) == ["anchor", "positive"]
    train, _ = prepare_splits(plain, [], CHUNKS, seed=0, use_hard_negatives=True, loss="cached_mnrl")
    assert list(train.as_dict()) == ["anchor", "positive"]


def test_a_score_based_loss_gets_candidates_and_teacher_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    losses: Registry[LossSpec] = Registry("loss")
    losses.register(SCORED.name, SCORED)
    monkeypatch.setattr(training_data, "LOSSES", losses)
    scored = [
        _pair(i, negative_ids=("c4", "c5"), score=0.9, negative_scores=(0.3, 0.1), weight=2.0) for i in range(3)
    ]
    train, dev = prepare_splits(scored, scored[:1], CHUNKS, seed=0, use_hard_negatives=True, loss="scored")
    assert list(train.as_dict()) == ["anchor", "positive", "negative_1", "negative_2", "label"]
    assert len(train) == 6 and len(dev) == 1
    assert train["negative_2"][0] == CHUNKS["c5"] and train["label"][0] == [0.9, 0.3, 0.1]
    assert [column_role(c) for c in train.as_dict()] == ["query", "document", "document", "document", None]
    with pytest.raises(TrainingDataError, match="scored_candidates, which these pairs cannot supply: 2 of 3"):
        prepare_splits([*scored[:2], _pair(3)], [], CHUNKS, seed=0, use_hard_negatives=True, loss="scored")
    with pytest.raises(TrainingDataError, match="dev pair 0 .* no teacher score"):
        prepare_splits(scored, [_pair(3)], CHUNKS, seed=0, use_hard_negatives=True, loss="scored")
    uneven = [*scored[:2], _pair(3, negative_ids=("c4",), score=0.5, negative_scores=(0.2,))]
    with pytest.raises(TrainingDataError, match="same number of scored negatives"):
        prepare_splits(uneven, [], CHUNKS, seed=0, use_hard_negatives=True, loss="scored")


# ---- listwise forms (query-side adaptation): values computed by hand -------------------------------------------

TEMPERATURES = SimpleNamespace(teacher_temperature=0.1, student_temperature=0.05)


def _listwise(name: str, student, teacher, mask, **extra):
    import torch

    as_tensor = functools.partial(torch.tensor, dtype=torch.float32)
    return LOSSES[name].listwise(as_tensor(student), as_tensor(teacher), torch.tensor(mask), TEMPERATURES, **extra)


def test_kl_is_zero_when_the_student_matches_the_teacher_at_their_temperatures() -> None:
    # teacher / 0.1 == student / 0.05: the same distribution.
    assert _listwise("kl", [[0.5, 0.0, 0.2]], [[1.0, 0.0, 0.4]], [[True] * 3]).item() == pytest.approx(0, abs=1e-6)


def test_kl_by_hand_and_padding_changes_nothing() -> None:
    p1 = math.e / (math.e + 1)  # teacher [0.1, 0] / 0.1 = [1, 0]; student [0, 0]: uniform
    by_hand = p1 * math.log(2 * p1) + (1 - p1) * math.log(2 * (1 - p1))
    assert _listwise("kl", [[0.0, 0.0]], [[0.1, 0.0]], [[True, True]]).item() == pytest.approx(by_hand, rel=1e-5)
    padded = _listwise("kl", [[0.0, 0.0, 0.9], [0.5, 0.0, -3.0]], [[0.1, 0.0, 7.0], [1.0, 0.0, 2.0]],
                       [[True, True, False], [True, True, False]])
    assert padded.item() == pytest.approx(by_hand / 2, rel=1e-5)  # the second row matches exactly: KL 0


def test_margin_mse_by_hand_with_the_teachers_top_candidate_as_positive() -> None:
    # top = candidate 0; margins: student (0.2, 0.4), teacher (0.5, 0.8); the padded 4th column is ignored.
    value = _listwise("margin_mse", [[0.5, 0.3, 0.1, 9.9]], [[1.0, 0.5, 0.2, 5.0]], [[True, True, True, False]])
    assert value.item() == pytest.approx((0.3**2 + 0.4**2) / 2)
    # the top need not come first: margin student 0.1 - 0.3, teacher 1.0 - 0.2
    assert _listwise("margin_mse", [[0.3, 0.1]], [[0.2, 1.0]], [[True, True]]).item() == pytest.approx(1.0)


def test_labelled_loss_by_hand_drops_negatives_the_teacher_ranks_above_a_positive() -> None:
    import torch

    student = [[0.5, 0.4, 0.3, 0.2, 0.9], [0.1, 0.2, 0.3, 0.4, 0.0]]
    teacher = [[0.9, 0.5, 0.7, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]]
    mask = [[True, True, True, True, False], [True, True, True, True, False]]
    positive = torch.tensor([[True, True, False, False, False], [False] * 5])
    # Logits /0.05: [10, 8, 6, 4]; candidate 2 (teacher 0.7 > lowest positive 0.5) is not a negative, 3 is;
    # the padded column and the row without a positive count for nothing.
    by_hand = (math.log1p(math.exp(4 - 10)) + math.log1p(math.exp(4 - 8))) / 2
    value = _listwise("labelled", student, teacher, mask, positive=positive)
    assert value.item() == pytest.approx(by_hand, rel=1e-4)  # float32 logits
    with pytest.raises(ValueError, match="needs judged positives"):
        _listwise("labelled", student, teacher, mask)


def test_labelled_loss_without_negatives_is_zero_with_finite_gradients() -> None:
    import torch

    student = torch.tensor([[0.5, 0.4]], requires_grad=True)
    everything = torch.tensor([[True, True]])
    value = LOSSES["labelled"].listwise(student, torch.tensor([[1.0, 0.9]]), everything, TEMPERATURES,
                                        positive=everything)
    value.backward()
    assert value.item() == 0 and torch.isfinite(student.grad).all()
