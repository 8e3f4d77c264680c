"""The loss registry and the columns each loss is given (no model is loaded)."""

from __future__ import annotations

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
    assert list(LOSSES) == ["mnrl", "cached_mnrl"]
    assert LOSSES["mnrl"].title == "MultipleNegativesRankingLoss"
    assert LOSSES["cached_mnrl"].title == "CachedMultipleNegativesRankingLoss"
    with pytest.raises(ValueError, match="already registered"):
        LOSSES.register("mnrl", LOSSES["mnrl"])
    with pytest.raises(UnknownNameError, match="did you mean 'mnrl'"):
        LOSSES["mnlr"]


def test_config_accepts_registered_names_only_and_suggests() -> None:
    assert TrainConfig().loss == "mnrl"
    assert TrainConfig(loss=" CACHED_MNRL ").loss == "cached_mnrl"
    assert TrainConfig(loss="cached_mnrl").to_dict()["loss"] == "cached_mnrl"
    with pytest.raises(TrainConfigError, match=r"loss must be one of mnrl, cached_mnrl; got 'cached_mrnl' \(did you"):
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
