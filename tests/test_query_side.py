"""Query-side adaptation: a tiny real run writes a Router model whose documents are the base's, bit for bit."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from fieldtune.encoding import Encoder
from fieldtune.model_record import ModelRecord
from fieldtune.models import load_model, resolve_model
from fieldtune.training import TrainConfigError, TrainingDataError
from fieldtune.training.query_model import document_fingerprint, is_query_side, shared_document_encoder
from fieldtune.training.query_side import (
    QuerySideConfig,
    average_query_route,
    linear_schedule,
    train_query_side,
)
from fieldtune.types import ScoredQuery

TOPICS = {
    "tableaux": "Semistandard Young tableaux of a given shape are counted by Kostka numbers",
    "hall": "Hall polynomials are structure constants of the Hall algebra of abelian p-groups",
    "folding": "Chaperone proteins assist the folding of newly synthesised polypeptide chains",
    "colouring": "A proper colouring gives adjacent vertices of a graph different colours",
    "heat": "The heat equation is a parabolic partial differential equation of diffusion",
    "primes": "The prime number theorem describes the density of primes among the integers",
    "orbits": "Kepler's laws describe elliptical planetary orbits around the sun",
    "enzymes": "Enzymes lower the activation energy of biochemical reactions in the cell",
}
ASPECTS = ("an introduction", "a classical result", "an open problem", "an application")
DOCS = {f"{topic}-{i}": f"{text}: {aspect}." for topic, text in TOPICS.items() for i, aspect in enumerate(ASPECTS)}
QUESTIONS = ("what counts {t}", "how does {t} work", "examples of {t}")
#: Tiny and fast: 3 steps of 8 queries, short sequences.
CONFIG = QuerySideConfig(base="minilm", batch_size=8, max_steps=3, max_seq_length=32, seed=7, device="cpu")


def _examples(n: int, seed: int, *, labelled: bool = False) -> list[ScoredQuery]:
    rng = random.Random(seed)
    topics, ids = list(TOPICS), list(DOCS)
    examples = []
    for i in range(n):
        topic = topics[i % len(topics)]
        own = [d for d in ids if d.startswith(topic)]
        others = rng.sample([d for d in ids if not d.startswith(topic)], 8 - 2)
        candidates = [*own[:2], *others]
        scores = [1.0, 0.8, *(round(rng.random() * 0.5, 3) for _ in others)]
        text = QUESTIONS[i % len(QUESTIONS)].format(t=topic)
        examples.append(ScoredQuery(f"q{i}", text, tuple(candidates), tuple(scores),
                                    positive_ids=(own[0],) if labelled else ()))
    return examples


@pytest.fixture(scope="module")
def document_vectors() -> dict[str, np.ndarray]:
    ids = list(DOCS)
    vectors = Encoder("minilm", use_cache=False, show_progress=False).encode([DOCS[d] for d in ids], kind="document")
    return dict(zip(ids, vectors, strict=True))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, document_vectors: dict[str, np.ndarray]) -> Path:
    out = tmp_path_factory.mktemp("query-side") / "model"
    train_query_side(_examples(20, 0), document_vectors, model_dir=out, config=CONFIG,
                     dev_examples=_examples(6, 1), progress=False)
    return out


def test_scored_query_round_trips() -> None:
    query = ScoredQuery("q1", "text", ("a", "b"), (0.5, 0.25), positive_ids=("a",))
    assert ScoredQuery.from_dict(query.to_dict()) == query
    assert ScoredQuery.from_dict({"query_id": 3, "text": "t", "candidate_ids": ["a"], "teacher_scores": [1]}) == (
        ScoredQuery("3", "t", ("a",), (1.0,))
    )


def test_config_takes_listwise_losses_only_and_checks_values() -> None:
    assert QuerySideConfig().loss == "kl" and QuerySideConfig().learning_rate == 3e-5
    assert QuerySideConfig(loss=" MARGIN_MSE ").loss == "margin_mse"
    with pytest.raises(TrainConfigError, match="query-side loss must be one of kl, margin_mse, labelled; got 'mnrl'"):
        QuerySideConfig(loss="mnrl")
    with pytest.raises(TrainConfigError, match="did you mean kl"):
        QuerySideConfig(loss="kll")
    with pytest.raises(TrainConfigError, match="student_temperature must be a positive number"):
        QuerySideConfig(student_temperature=0)
    with pytest.raises(TrainConfigError, match="matryoshka_weights has 1 values but matryoshka_dims has 2"):
        QuerySideConfig(matryoshka_dims=(384, 64), matryoshka_weights=(1.0,))
    with pytest.raises(TypeError):
        QuerySideConfig("minilm")  # type: ignore[misc]  # keyword-only


def test_learning_rate_warms_up_then_decays_to_zero() -> None:
    # 10 steps, 10% warm-up = 1 step at half the rate, then 1 - k/9 for the k-th step after it.
    factors = [linear_schedule(done, 10, 0.1) for done in range(10)]
    assert factors[0] == 0.5 and factors[1] == 1.0 and factors[9] == pytest.approx(1 / 9) and factors[-1] > 0
    assert linear_schedule(10, 10, 0.1) == 0.0
    assert [linear_schedule(done, 4, 0.5) for done in range(4)] == [1 / 3, 2 / 3, 1.0, 0.5]


def test_bad_examples_fail_before_a_model_loads(tmp_path: Path) -> None:
    vectors = {"a": np.ones(384, dtype=np.float32)}
    with pytest.raises(TrainingDataError, match="training query 0 .q1. names candidates without a document vector: b"):
        train_query_side([ScoredQuery("q1", "x", ("a", "b"), (1.0, 0.0))], vectors, model_dir=tmp_path, config=CONFIG)
    with pytest.raises(TrainingDataError, match="2 candidates but 1 teacher scores"):
        train_query_side([ScoredQuery("q1", "x", ("a", "a"), (1.0,))], vectors, model_dir=tmp_path, config=CONFIG)
    with pytest.raises(TrainingDataError, match="dev query 0 .q2. has positives that are not candidates: z"):
        train_query_side([ScoredQuery("q1", "x", ("a",), (1.0,))], vectors, model_dir=tmp_path, config=CONFIG,
                         dev_examples=[ScoredQuery("q2", "y", ("a",), (1.0,), positive_ids=("z",))])
    with pytest.raises(TrainingDataError, match="labelled loss needs judged positives"):
        train_query_side([ScoredQuery("q1", "x", ("a",), (1.0,))], vectors, model_dir=tmp_path,
                         config=QuerySideConfig(loss="labelled"))
    assert not any(tmp_path.iterdir())


def test_the_model_routes_queries_to_the_trained_copy_and_documents_to_the_base(trained: Path) -> None:
    from sentence_transformers import SentenceTransformer

    base = load_model("minilm", device="cpu")
    model = SentenceTransformer(str(trained), device="cpu")
    assert is_query_side(model) and not is_query_side(base)
    docs, queries = list(DOCS.values())[:5], ["what counts tableaux", "proteins that help folding"]
    assert np.array_equal(model.encode_document(docs), base.encode_document(docs))
    assert not np.allclose(model.encode_query(queries), base.encode_query(queries), atol=1e-6)
    assert model.max_seq_length == base.max_seq_length  # training's 32 tokens do not stick
    short = SentenceTransformer(str(trained), device="cpu", truncate_dim=64)
    assert short.encode_query(queries).shape == (2, 64)
    assert np.allclose(short.encode_document(docs), base.encode_document(docs)[:, :64])


def test_the_record_says_query_side_and_carries_the_document_fingerprint(trained: Path) -> None:
    from sentence_transformers import SentenceTransformer

    record = ModelRecord.read(trained)
    assert record.extra["query_side"] is True
    assert record.loss == "kl" and record.base_model == "minilm" and record.steps == 3
    assert record.matryoshka_dims == (384, 256, 128, 64)
    assert record.best_step is not None and record.best_eval_loss is not None
    assert record.config["planned_steps"] == 3 and record.stopped_because == "max_steps"
    assert record.extra["train_queries"] == 20 and record.extra["dev_queries"] == 6
    base_fingerprint = document_fingerprint(load_model("minilm", device="cpu"))
    assert record.extra["document_fingerprint"] == base_fingerprint
    assert document_fingerprint(SentenceTransformer(str(trained), device="cpu")) == base_fingerprint


def test_documents_encoded_by_the_base_serve_the_adapted_model_unless_its_record_lies(
    trained: Path, tmp_path: Path
) -> None:
    import shutil

    assert shared_document_encoder(str(trained)) == "minilm"
    assert shared_document_encoder(resolve_model("minilm").location) is None  # a plain model: no record
    assert shared_document_encoder(str(tmp_path / "nowhere")) is None
    copied = shutil.copytree(trained, tmp_path / "lying")
    record = ModelRecord.read(copied)
    ModelRecord.from_dict({**record.to_dict(), "document_fingerprint": "0" * 64}).write(copied)
    assert shared_document_encoder(str(copied)) is None


def test_averaging_the_query_route_with_the_base(trained: Path, tmp_path: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    out = average_query_route(trained, "minilm", 0.5, tmp_path / "averaged")
    averaged, tuned = SentenceTransformer(str(out), device="cpu"), SentenceTransformer(str(trained), device="cpu")
    base = load_model("minilm", device="cpu")
    name = "0.model.encoder.layer.0.attention.self.query.weight"
    expected = 0.5 * tuned[0].sub_modules["query"].state_dict()[name] + 0.5 * base.state_dict()[name]
    assert torch.allclose(averaged[0].sub_modules["query"].state_dict()[name], expected)
    record = ModelRecord.read(out)
    assert record.weight_average is not None and record.weight_average.alpha == 0.5
    assert record.extra["document_fingerprint"] == document_fingerprint(averaged) == document_fingerprint(base)
    with pytest.raises(ValueError, match="not a query-side model"):
        average_query_route(Path(resolve_model("minilm").location), "minilm", 0.5, tmp_path / "x")


def test_same_seed_same_query_encoder(
    trained: Path, tmp_path: Path, document_vectors: dict[str, np.ndarray]
) -> None:
    from sentence_transformers import SentenceTransformer

    train_query_side(_examples(20, 0), document_vectors, model_dir=tmp_path / "again", config=CONFIG,
                     dev_examples=_examples(6, 1), progress=False)
    queries = ["what counts tableaux", "heat diffusion"]
    first = SentenceTransformer(str(trained), device="cpu").encode_query(queries)
    again = SentenceTransformer(str(tmp_path / "again"), device="cpu").encode_query(queries)
    assert np.array_equal(first, again)


def test_a_budget_that_cannot_fit_one_step_says_so_and_writes_nothing(
    tmp_path: Path, document_vectors: dict[str, np.ndarray]
) -> None:
    from fieldtune.training import BudgetTooSmallError

    config = QuerySideConfig(base="minilm", batch_size=8, max_seq_length=32, device="cpu", budget_minutes=0.001)
    with pytest.raises(BudgetTooSmallError, match="cannot fit one query-side step"):
        train_query_side(_examples(8, 0), document_vectors, model_dir=tmp_path / "model", config=config,
                         progress=False)
    assert not (tmp_path / "model").exists()


def test_the_score_based_losses_also_build_for_full_model_training() -> None:
    import torch

    from fieldtune.training import TrainConfig
    from fieldtune.training.setup import build_loss

    model = load_model("minilm", device="cpu")
    queries, docs = model.preprocess(["a query", "another query"]), model.preprocess(["doc one", "doc two"])
    teacher = torch.tensor([[0.9, 0.3, 0.1], [0.8, 0.2, 0.5]])  # [positive, negative_1, negative_2] per row
    columns = {"kl": ([queries, docs, docs, docs], teacher), "margin_mse": ([queries, docs, docs, docs], teacher),
               "labelled": ([queries, docs], None)}
    for name, (features, labels) in columns.items():
        value = build_loss(model, TrainConfig(loss=name), [384, 64], [1.0, 1.0])(features, labels)
        assert torch.isfinite(value) and value.requires_grad, name
