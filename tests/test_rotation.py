"""The principal rotation: orthogonal, ordered by energy, and invisible to full-dimension search."""

from __future__ import annotations

import numpy as np
from sentence_transformers import SentenceTransformer

from fieldtune.encoding import Encoder
from fieldtune.models import load_model
from fieldtune.rotation import add_rotation, principal_rotation

TEXTS = [
    "Kostka numbers count semistandard Young tableaux.",
    "The Riemann zeta function has trivial zeros at negative even integers.",
    "A Groebner basis makes ideal membership decidable.",
    "Hypergeometric functions satisfy second order differential equations.",
    "Sparse matrices store only their nonzero entries.",
    "The Laplace transform turns convolution into multiplication.",
] * 3


def test_principal_rotation_is_orthogonal_and_sorts_energy() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 16)) * np.linspace(0.1, 3.0, 16)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rotation = principal_rotation(x)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(16), atol=1e-5)
    energy = ((x @ rotation) ** 2).mean(axis=0)
    assert np.all(np.diff(energy) <= 1e-6)
    np.testing.assert_array_equal(rotation, principal_rotation(x))  # deterministic signs


def test_rotated_model_keeps_full_dimension_scores_and_loads_in_plain_sentence_transformers(tmp_path) -> None:
    load_model("minilm", device="cpu").save(str(tmp_path / "m"))
    before = Encoder(str(tmp_path / "m"), precision="fp32", use_cache=False, show_progress=False)
    queries, docs = before.encode(TEXTS[:3], kind="query"), before.encode(TEXTS, kind="document")
    record = add_rotation(tmp_path / "m", TEXTS, precision="fp32")
    assert record["energy@64:after"] > record["energy@64:before"]
    plain = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert type(plain[-1]).__name__ == "Dense"
    after = Encoder(str(tmp_path / "m"), precision="fp32", use_cache=False, show_progress=False)
    np.testing.assert_allclose(after.encode(TEXTS[:3], kind="query") @ after.encode(TEXTS, kind="document").T,
                               queries @ docs.T, atol=1e-4)
