"""Encoder backends: what turns texts into embedding vectors behind :class:`fieldtune.encoding.Encoder`.

A backend is any object with the :class:`EncoderBackend` methods. The
:class:`~fieldtune.encoding.Encoder` in front of it applies what every backend
shares (unit norm, float32, the embedding cache), so a backend only runs the
model. Four exist today, one module each:

- ``onnx`` (:mod:`fieldtune.encoders.onnx`): a directory written by
  ``fieldtune export --onnx``, run on onnxruntime;
- ``openvino`` (:mod:`fieldtune.encoders.openvino`): an int8 model made for
  this CPU by :mod:`fieldtune.quantize` (what ``--precision int8``, and
  ``auto`` on CPUs without native bf16, encode with);
- ``sentence-transformers`` (:mod:`fieldtune.encoders.sentence_transformers`):
  any other model, loaded by sentence-transformers (bf16 weights where asked);
- ``ray`` (:mod:`fieldtune.encoders.ray`): documents encoded by a pool of Ray
  Data actors (``fieldtune index --ray local|ADDRESS``), chosen by name.

:func:`backend_for` picks one for a model: a name the caller gives, or else the
first registered backend whose ``handles`` accepts the model (so specialised
backends are registered before the catch-all sentence-transformers one).

Adding a backend (the Ray one is an example)
--------------------------------------------
Write ``fieldtune/encoders/<name>.py`` (as ``ray.py`` is) with a class that has the
:class:`EncoderBackend` methods (``encode_query`` / ``encode_document`` sending
batches to Ray workers) and two functions, as the other backend modules have:
``handles(ref)`` (``False``: Ray is chosen by name, ``Encoder(...,
backend="ray")``, not by what the model directory holds) and ``load(ref,
precision)`` (importing ``ray`` there, through
:func:`fieldtune.errors.require_extra`, since it is an optional extra). The
module imports nothing from this package: a Protocol is matched by shape, and
an import back here would be a cycle. Then add ``ray`` to the import of the
backend modules below and register it with one line::

    ENCODER_BACKENDS.register("ray", BackendSpec(handles=ray.handles, load=ray.load))

The cache fingerprint is the model's weights, the precision and
``max_seq_length``: a backend that embeds the same model at the same precision
shares cached embeddings with the others, which is what one wants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from fieldtune.encoders import onnx, openvino, ray, sentence_transformers
from fieldtune.models import ModelRef
from fieldtune.registry import Registry, UnknownNameError


class EncoderBackend(Protocol):
    """A loaded model that embeds texts (see the module docstring)."""

    @property
    def max_seq_length(self) -> int:
        """Tokens kept per text; part of the cache fingerprint."""
        ...

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer (chunking measures text in the model's tokens)."""
        ...

    def get_embedding_dimension(self) -> int: ...

    def encode_query(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        """Embeddings of ``texts`` as queries (the model's query prompt applied), not normalised."""
        ...

    def encode_document(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        """Embeddings of ``texts`` as documents (the model's document prompt applied), not normalised."""
        ...


@dataclass(frozen=True)
class BackendSpec:
    """How a backend is recognised and loaded.

    ``handles(ref)`` says whether the backend is the one for this model when the
    caller names none; ``load(ref, precision)`` returns the loaded backend, where
    ``precision`` is ``"fp32"`` or ``"bf16"`` (already resolved; a backend whose
    model fixes its own numbers, like an ONNX export, ignores it).
    """

    handles: Callable[[ModelRef], bool]
    load: Callable[[ModelRef, str], EncoderBackend]


#: Encoder backends by name, in the order :func:`backend_for` tries them.
ENCODER_BACKENDS: Registry[BackendSpec] = Registry("encoder backend")
ENCODER_BACKENDS.register("onnx", BackendSpec(handles=onnx.handles, load=onnx.load))
ENCODER_BACKENDS.register("openvino", BackendSpec(handles=openvino.handles, load=openvino.load))
ENCODER_BACKENDS.register("ray", BackendSpec(handles=ray.handles, load=ray.load))
ENCODER_BACKENDS.register(
    "sentence-transformers",
    BackendSpec(handles=sentence_transformers.handles, load=sentence_transformers.load),
)


def backend_for(ref: ModelRef, name: str | None = None) -> str:
    """The name of the backend that encodes ``ref``: ``name`` if given (and registered), else the first that handles it.

    An unknown ``name`` raises :class:`~fieldtune.registry.UnknownNameError`
    listing the registered backends and the close ones.
    """
    if name is not None:
        if name not in ENCODER_BACKENDS:
            raise UnknownNameError(ENCODER_BACKENDS.unknown_message(name))
        return name
    for candidate, spec in ENCODER_BACKENDS.items():
        if spec.handles(ref):
            return candidate
    raise LookupError(f"no encoder backend handles {ref.spec!r} (registered: {', '.join(ENCODER_BACKENDS)})")


def load_backend(ref: ModelRef, precision: str, name: str | None = None) -> EncoderBackend:
    """Load ``ref`` with the backend :func:`backend_for` picks."""
    return ENCODER_BACKENDS[backend_for(ref, name)].load(ref, precision)
