from __future__ import annotations

import time
from pathlib import Path

import pytest

from fieldtune.errors import ModelNotFoundError
from fieldtune.models import REGISTRY, BundledModel, resolve_model


def test_default_model_resolves_offline() -> None:
    ref = resolve_model("minilm")
    assert ref.kind == "bundled" and (Path(ref.location) / "config.json").exists()


def test_local_directory_resolves() -> None:
    location = resolve_model("minilm").location
    assert resolve_model(location).kind == "local"


@pytest.mark.parametrize("name", ["minlm", "bert-large", "./no/such/dir", "owner/model-on-the-hub"])
def test_unknown_names_fail_fast_listing_registered_models(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIELDTUNE_ALLOW_HUB", raising=False)
    started = time.time()
    with pytest.raises(ModelNotFoundError, match="minilm") as error:
        resolve_model(name)
    assert time.time() - started < 5
    if name == "minlm":
        assert "did you mean minilm" in str(error.value)


def test_hub_id_with_hub_allowed_but_no_network_fails_within_seconds() -> None:
    started = time.time()
    with pytest.raises(ModelNotFoundError, match="not reachable|minilm"):
        resolve_model("sentence-transformers/does-not-exist", allow_hub=True)
    assert time.time() - started < 6


def test_directory_without_model_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a sentence-transformers model directory"):
        resolve_model(str(tmp_path))


def test_registry_rejects_duplicates() -> None:
    with pytest.raises(ValueError, match="already registered"):
        REGISTRY.register("minilm", BundledModel("minilm", "x", lambda: Path("."), "dup", 1))
