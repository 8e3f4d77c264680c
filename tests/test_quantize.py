"""The int8 path for CPUs without bf16: calibration texts, making and checking the model, the encoder's choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fieldtune import quantize
from fieldtune.calibration import calibration_texts
from fieldtune.encoding import INT8_MIN_TEXTS, Encoder, Precision
from fieldtune.models import DamagedModelError, resolve_model
from fieldtune.onnx_layout import ONNX_FILE, OPENVINO_FILE

needs_openvino = pytest.mark.skipif(not quantize.int8_supported(),
                                    reason="this CPU's int8 runtime is not installed (fieldtune[fast])")


def _graph_file() -> str:
    """The int8 graph this CPU's recipe makes: OpenVINO's with VNNI, ONNX Runtime's without."""
    return OPENVINO_FILE if quantize.int8_recipe() == quantize.OPENVINO_RECIPE else ONNX_FILE

TEXTS = [
    "The integral of a rational function can be computed by partial fractions.",
    "Mutations in the BRCA1 gene raise the risk of breast cancer.",
    "eigenvalues of a symmetric matrix",
    "A Groebner basis of a polynomial ideal generalises Gaussian elimination to several variables, and "
    "Buchberger's algorithm computes one by reducing S-polynomials until every pair reduces to zero.",
]


def test_calibration_texts_are_deterministic_and_of_mixed_length() -> None:
    first, second = calibration_texts(40), calibration_texts(40)
    assert first == second and len(first) == 40 and len(set(first)) == 40
    words = [len(text.split()) for text in first]
    assert min(words) < 20 and max(words) > 120  # short, query-like ones and abstract-like passages


@pytest.fixture(scope="module")
def int8_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache of its own: other tests must not find an int8 minilm and switch auto to it."""
    return tmp_path_factory.mktemp("int8-cache")


@pytest.fixture()
def own_cache(int8_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(int8_cache))
    return int8_cache


def _fp32(texts: list[str], kind: str) -> np.ndarray:
    return Encoder("minilm", precision="fp32", use_cache=False, show_progress=False).encode(texts, kind=kind)


@pytest.mark.slow
@needs_openvino
def test_int8_encoder_agrees_with_fp32_and_records_its_check(own_cache: Path) -> None:
    encoder = Encoder("minilm", precision="int8", use_cache=False, show_progress=False)
    for kind in ("query", "document"):
        cosines = (encoder.encode(TEXTS, kind=kind) * _fp32(TEXTS, kind)).sum(axis=1)
        assert cosines.min() >= 0.97 and cosines.mean() >= 0.99, cosines
    assert encoder.precision is Precision.INT8
    assert encoder.fingerprint() != Encoder("minilm", precision="fp32").fingerprint()
    (made,) = [path for path in (own_cache / "int8").iterdir() if path.is_dir()]
    verdict = json.loads((made / quantize.CHECK_FILE).read_text())
    assert verdict["accepted"] and verdict["mean_cosine"] >= quantize.MIN_MEAN_COSINE
    assert "avx2" in verdict["hardware"]["cpu_features"]  # the CPU it was made and checked on
    stamp = (made / _graph_file()).stat().st_mtime_ns
    Encoder("minilm", precision="int8", use_cache=False, show_progress=False).encode(TEXTS[:1], kind="query")
    assert (made / _graph_file()).stat().st_mtime_ns == stamp  # made once, then reused


@pytest.mark.slow
@pytest.mark.parametrize(("recipe", "graph", "runtime"), [
    (quantize.OPENVINO_RECIPE, OPENVINO_FILE, "openvino"), (quantize.ONNXRUNTIME_RECIPE, ONNX_FILE, "onnxruntime")])
def test_each_recipe_makes_a_faithful_int8_model_on_its_runtime(
        recipe: str, graph: str, runtime: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip(runtime)
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(quantize, "int8_recipe", lambda: recipe)  # whichever this CPU would pick
    encoder = Encoder("minilm", precision="int8", use_cache=False, show_progress=False)
    cosines = (encoder.encode(TEXTS, kind="document") * _fp32(TEXTS, "document")).sum(axis=1)
    assert encoder.precision is Precision.INT8 and cosines.mean() >= 0.99, cosines
    (made,) = [path for path in (tmp_path / "int8").iterdir() if path.is_dir()]
    verdict = json.loads((made / quantize.CHECK_FILE).read_text())
    assert verdict["recipe"] == recipe and (made / graph).is_file() and verdict["speedup"] > 0


@pytest.mark.slow
@needs_openvino
def test_auto_decides_by_the_job_size_alone(own_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fieldtune.encoding.supports_bf16", lambda: False)
    monkeypatch.setattr(quantize, "MIN_SPEEDUP", 0.0)  # int8 whatever its speed on this CPU (tested below)
    small = Encoder("minilm", use_cache=False, show_progress=False)
    small.encode(TEXTS, kind="query")
    assert small.precision is Precision.FP32  # even though an int8 minilm exists here (the test above)
    large = Encoder("minilm", use_cache=False, show_progress=False)
    large.prepare(INT8_MIN_TEXTS)
    assert large.precision is Precision.INT8


@pytest.mark.slow
@needs_openvino
def test_a_query_side_model_in_int8_uses_its_query_route_and_its_base_documents(
        own_cache: Path, tmp_path: Path) -> None:
    from fieldtune.training.query_side import train_query_side
    from tests.test_query_side import CONFIG, DOCS, _examples

    ids = list(DOCS)
    base_docs = Encoder("minilm", precision="fp32", use_cache=False, show_progress=False).encode(
        [DOCS[d] for d in ids], kind="document")
    model = tmp_path / "query-side"
    train_query_side(_examples(20, 0), dict(zip(ids, base_docs, strict=True)), model_dir=model, config=CONFIG,
                     progress=False)
    adapted = Encoder(str(model), precision="int8", use_cache=False, show_progress=False)
    queries = adapted.encode(TEXTS, kind="query")
    assert adapted.precision is Precision.INT8
    fp32 = Encoder(str(model), precision="fp32", use_cache=False, show_progress=False).encode(TEXTS, kind="query")
    assert (queries * fp32).sum(axis=1).mean() >= 0.99
    base_int8 = Encoder("minilm", precision="int8", use_cache=False, show_progress=False)
    np.testing.assert_array_equal(adapted.encode(TEXTS, kind="document"), base_int8.encode(TEXTS, kind="document"))


@pytest.mark.slow
@needs_openvino
def test_a_rotated_copy_in_int8_is_its_source_rotated_and_encodes_nothing_its_source_encoded(
        own_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sentence_transformers import SentenceTransformer

    from fieldtune.models import load_model
    from fieldtune.rotation import add_rotation
    from fieldtune.rotation_record import ROTATION_MATRIX, unrotated_source

    corpus = [f"{text} (passage {i})" for i, text in enumerate(TEXTS * 6)]
    source = Encoder("minilm", precision="int8", show_progress=False).encode(corpus, kind="document")
    load_model("minilm", device="cpu").save(str(tmp_path / "kept"))  # a build's kept-base copy
    add_rotation(tmp_path / "kept", corpus, precision="int8", source="minilm")
    rotation = np.load(tmp_path / "kept" / ROTATION_MATRIX)
    made = sorted((own_cache / "int8").iterdir())

    rotated = Encoder(str(tmp_path / "kept"), precision="int8", show_progress=False)
    calls: list[int] = []
    encode = rotated._encode
    monkeypatch.setattr(rotated, "_encode", lambda texts, kind: calls.append(len(texts)) or encode(texts, kind))
    np.testing.assert_allclose(rotated.encode(corpus, kind="document"), source @ rotation, atol=1e-6)
    assert calls == [] and rotated.precision is Precision.INT8  # read from the source's cache
    assert sorted((own_cache / "int8").iterdir()) == made  # the source's int8 model, not a new one
    assert rotated.fingerprint() != Encoder("minilm", precision="int8").fingerprint()

    fresh = rotated.encode(TEXTS, kind="query")  # not cached: the source's int8 graph, then the rotation
    assert calls == [len(TEXTS)]
    plain = SentenceTransformer(str(tmp_path / "kept"), device="cpu").encode_query(TEXTS, normalize_embeddings=True)
    assert (fresh * plain).sum(axis=1).min() >= 0.98 and (fresh * plain).sum(axis=1).mean() >= 0.99

    source_fp32 = Encoder("minilm", precision="fp32", show_progress=False).encode(corpus, kind="document")
    rotated_fp32 = Encoder(str(tmp_path / "kept"), precision="fp32", show_progress=False)
    monkeypatch.setattr(rotated_fp32, "_encode", lambda texts, kind: calls.append(-len(texts)) or [])
    np.testing.assert_allclose(rotated_fp32.encode(corpus, kind="document"), source_fp32 @ rotation, atol=1e-6)
    assert calls == [len(TEXTS)]  # fp32: read from the source's fp32 cache too

    config = tmp_path / "kept" / "config_sentence_transformers.json"
    config.write_text(config.read_text() + " ")  # edited after the build: no shortcut
    assert unrotated_source(tmp_path / "kept") is None


@pytest.mark.slow
@needs_openvino
def test_auto_takes_int8_only_where_it_was_faster_and_int8_asked_for_still_gets_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("fieldtune.encoding.supports_bf16", lambda: False)
    monkeypatch.setattr(quantize, "MIN_SPEEDUP", 1000.0)  # no CPU runs int8 1000x faster than fp32
    auto = Encoder("minilm", use_cache=False, show_progress=False)
    auto.prepare(INT8_MIN_TEXTS)
    assert auto.precision is Precision.FP32
    (made,) = [path for path in (tmp_path / "cache" / "int8").iterdir() if path.is_dir()]
    verdict = json.loads((made / quantize.CHECK_FILE).read_text())
    assert verdict["accepted"] and verdict["speedup"] > 0
    asked = Encoder("minilm", precision="int8", use_cache=False, show_progress=False)
    asked.encode(TEXTS, kind="document")
    assert asked.precision is Precision.INT8


@pytest.mark.slow
@needs_openvino
def test_a_rejected_int8_model_falls_back_to_fp32_and_is_not_remade(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDTUNE_CACHE", str(tmp_path))
    monkeypatch.setattr(quantize, "MIN_MEAN_COSINE", 1.01)  # no int8 model can agree this well
    encoder = Encoder("minilm", precision="int8", use_cache=False, show_progress=False)
    vectors = encoder.encode(TEXTS, kind="query")
    assert encoder.precision is Precision.FP32
    np.testing.assert_allclose(vectors, _fp32(TEXTS, "query"), atol=1e-5)
    (verdict_file,) = (tmp_path / "int8").glob(f"*/{quantize.CHECK_FILE}")
    verdict = json.loads(verdict_file.read_text())
    assert not verdict["accepted"] and "below" in verdict["reason"]
    assert not (verdict_file.parent / _graph_file()).exists()
    stamp = verdict_file.stat().st_mtime_ns
    again = Encoder("minilm", precision="int8", use_cache=False, show_progress=False)
    again.encode(TEXTS[:1], kind="query")
    assert again.precision is Precision.FP32 and verdict_file.stat().st_mtime_ns == stamp  # not re-made


@pytest.mark.slow
@needs_openvino
def test_a_damaged_int8_model_is_named(own_cache: Path, tmp_path: Path) -> None:
    Encoder("minilm", precision="int8", use_cache=False, show_progress=False).encode(TEXTS[:1], kind="query")
    (made,) = [path.parent for path in (own_cache / "int8").glob(f"*/{quantize.CHECK_FILE}")
               if json.loads(path.read_text())["source"] == "minilm"]
    copy = tmp_path / "copy"
    copy.mkdir()
    for entry in made.iterdir():
        copy.joinpath(entry.name).write_bytes(entry.read_bytes())
    (copy / _graph_file()).write_text("<net", encoding="utf-8")
    with pytest.raises(DamagedModelError, match=_graph_file()):
        Encoder(str(copy), use_cache=False, show_progress=False).encode(TEXTS[:1], kind="query")
    assert resolve_model(str(copy)).kind == "local"
