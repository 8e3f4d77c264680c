"""The query-adapted model form: one sentence-transformers model with a trained query route and the base's documents.

A query-side model is a ``SentenceTransformer`` whose only module is a
``Router`` with two routes: ``"query"``, a trained copy of the base's modules,
and ``"document"``, the base's modules unchanged (the default route, so a
plain ``encode`` embeds like the base). Saved, it loads with plain
``SentenceTransformer(path)``; ``encode_document`` gives the base's vectors bit
for bit, so an index built with the base stays valid, and
``encode_query`` uses the trained copy. Matryoshka truncation (``truncate_dim``)
works as for any model.

:func:`document_fingerprint` identifies what the document vectors depend on
(the document route's module types, configs and tensors, and the document
prompt) independently of how the weights were saved: the base and every
query-side model built on it have the same one, which is how an index checks
that it need not be re-encoded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fieldtune.model_record import ModelRecord
from fieldtune.models import load_model
from fieldtune.training import artifacts

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

logger = logging.getLogger("fieldtune.training")

QUERY_ROUTE = "query"
DOCUMENT_ROUTE = "document"
#: The model record key that marks a query-side model (``fieldtune.json``).
QUERY_SIDE_KEY = "query_side"
#: The model record key holding :func:`document_fingerprint` of the saved model.
FINGERPRINT_KEY = "document_fingerprint"


class NotQuerySideModelError(ValueError):
    """A model without the query/document ``Router`` that query-side adaptation writes."""


def _router(model: SentenceTransformer) -> Any:
    from sentence_transformers.sentence_transformer.modules import Router

    first = model[0] if len(model) else None
    return first if isinstance(first, Router) else None


def route_modules(model: SentenceTransformer, route: str) -> list[nn.Module]:
    """The modules that embed ``route`` texts: the Router's route, or every module of a plain model."""
    router = _router(model)
    if router is None:
        return list(model.children())
    if route not in router.sub_modules:
        raise NotQuerySideModelError(f"the model's Router has no {route!r} route (routes: {list(router.sub_modules)})")
    return list(router.sub_modules[route]) + list(model.children())[1:]


def is_query_side(model: SentenceTransformer) -> bool:
    router = _router(model)
    return router is not None and {QUERY_ROUTE, DOCUMENT_ROUTE} <= set(router.sub_modules)


def trainable_copy(base: SentenceTransformer) -> SentenceTransformer:
    """A standalone model holding a deep copy of the base's (document) modules, to train as the query encoder."""
    from sentence_transformers import SentenceTransformer

    modules = [copy.deepcopy(module) for module in route_modules(base, DOCUMENT_ROUTE)]
    return SentenceTransformer(modules=modules, device=str(base.device), prompts=dict(base.prompts or {}))


def assemble(query: SentenceTransformer, base: SentenceTransformer) -> SentenceTransformer:
    """The Router model: ``query``'s modules on the query route, the base's on the (default) document route."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Router

    router = Router.for_query_document(
        query_modules=list(query.children()), document_modules=route_modules(base, DOCUMENT_ROUTE)
    )
    return SentenceTransformer(
        modules=[router],
        device=str(base.device),
        prompts=dict(base.prompts or {}),
        default_prompt_name=base.default_prompt_name,
        similarity_fn_name=base.similarity_fn_name,
    )


def _document_prompt(model: SentenceTransformer) -> str:
    prompts = model.prompts or {}
    return next((prompts[name] for name in ("document", "passage", "corpus") if prompts.get(name)), "")


def document_fingerprint(model: SentenceTransformer) -> str:
    """SHA-256 over what document embeddings depend on: route modules (type, config, tensors) and document prompt.

    The same for the base and a query-side model built on it, however either
    was saved (a re-saved ``model.safetensors`` differs in bytes, not in tensors).
    """
    import torch

    digest = hashlib.sha256()
    digest.update(_document_prompt(model).encode())
    for module in route_modules(model, DOCUMENT_ROUTE):
        digest.update(type(module).__name__.encode())
        config = module.get_config_dict() if hasattr(module, "get_config_dict") else {}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().cpu().contiguous()
            digest.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
            digest.update(value.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def average_query_route(model_dir: Path, base: str, alpha: float, out: Path) -> Path:
    """Write ``out``: ``model_dir``'s query route averaged with the base (``alpha`` of the trained weights).

    The document route is the base's, untouched, so ``out`` keeps the same
    :func:`document_fingerprint`; the record is ``model_dir``'s with the
    average noted. The quality gate offers this as a candidate between the
    base and the query-adapted model.
    """
    import torch

    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha}")
    tuned = load_model(str(model_dir), device="cpu")
    if not is_query_side(tuned):
        raise NotQuerySideModelError(f"{model_dir} is not a query-side model (no query/document Router)")
    base_model = load_model(base, device="cpu")
    query = _router(tuned).sub_modules[QUERY_ROUTE]
    state = query.state_dict()
    base_state = {str(i): m for i, m in enumerate(route_modules(base_model, DOCUMENT_ROUTE))}
    base_flat = torch.nn.ModuleDict(base_state).state_dict()
    if set(state) != set(base_flat):
        raise ValueError(f"the query route of {model_dir} and {base} have different parameters; cannot average them")
    with torch.no_grad():
        averaged = {
            name: alpha * value.float() + (1 - alpha) * base_flat[name].float() if value.is_floating_point() else value
            for name, value in state.items()
        }
    query.load_state_dict(averaged)
    record = ModelRecord.read(model_dir).averaged_with(base, alpha)
    artifacts.publish_model(tuned, Path(out), record)
    return Path(out)


def shared_document_encoder(model_spec: str) -> str | None:
    """The base whose document embeddings ``model_spec``'s are, bit for bit, or None.

    For a query-side model (its ``fieldtune.json`` says so) whose document
    route has the fingerprint of its recorded base, documents encoded by the
    base (an index, the embedding cache) can be reused as they are: encoding a
    corpus takes minutes on a CPU, loading the two models to check takes
    seconds. Anything else (a plain model, a record that no longer matches the
    weights) gives None: encode with the model itself.
    """
    path = Path(model_spec).expanduser()
    if not ModelRecord.exists(path):
        return None
    record = ModelRecord.read(path)
    claimed = record.extra.get(FINGERPRINT_KEY)
    if not record.extra.get(QUERY_SIDE_KEY) or not claimed or not record.base_model:
        return None
    actual = document_fingerprint(load_model(str(path), device="cpu"))
    base = document_fingerprint(load_model(record.base_model, device="cpu"))
    if actual == base == claimed:
        return record.base_model
    logger.warning("%s: its document route is not the one recorded from %s; documents are encoded with the "
                   "model itself", path, record.base_model)
    return None
