"""Query encoders swapped into an index by ``fieldtune adapt``: where they live, the pointer, the check.

An adapted query encoder is a query-side model (:mod:`fieldtune.training.query_model`)
written under ``<index>/query-models/<n>/``; the manifest's ``query_model``
pointer (:class:`~fieldtune.search.manifest.QueryModelPointer`) names the one
searches use. Swapping it in, or rolling it back, replaces ``index.json`` in
one atomic write under the writers' lock, so a search sees the old encoder or
the new one; the segments, and so every stored document vector, are never
touched. An :class:`~fieldtune.search.Index` notices the new pointer on its
next search (``index.json`` changed) and loads the encoder it names.

A query encoder is accepted only if its document route has the fingerprint of
the model the index was encoded with: its query vectors are trained to be
compared with exactly those document vectors.

:class:`QueryEmbedder` is how a search gets its query vectors: recent ones from
the index's LRU (:mod:`fieldtune.search.query_cache`), new ones from the encoder
on a path made for a few short texts (one thread; see :data:`FEW_QUERIES`).
Concurrent searches share encodes: queries that arrive while the encoder is busy
wait together and are encoded in one batch by the next caller to get the encoder
(int8 MiniLM on one thread: a 17-token query ~1.7 ms alone, 20 of them ~25 ms in one batch), so 20 clients do not
queue 20 encodes one behind the other. A batch is split by length
(:func:`length_groups`): padding a 10-token query to a 180-token one costs as much
as encoding it 18 times, and one such query in a batch of 20 short ones made the batch ~7x dearer.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.encoders.graph_model import GraphModel
from fieldtune.encoders.onnx import OnnxModel
from fieldtune.encoders.openvino import OpenVinoModel
from fieldtune.encoding import Encoder, normalize
from fieldtune.errors import FieldtuneError
from fieldtune.hardware import torch_threads
from fieldtune.models import load_model
from fieldtune.quantize import load_int8
from fieldtune.search.manifest import IndexManifest, QueryModelPointer
from fieldtune.search.query_cache import QueryEmbeddingCache, QueryKey
from fieldtune.search.state import file_lock
from fieldtune.training.query_model import document_fingerprint

#: Folder of an index (relative to its root) that holds the adapted query encoders.
QUERY_MODELS = "query-models"
#: Up to this many texts (one search, or the searches a busy server batches) are encoded with one
#: thread. A short query is a few dozen tokens: a second thread saves little of its ~7 ms and, when
#: another process keeps a core busy, makes it slower (OpenVINO int8, one 7-word query, load average 6
#: on 2 cores: 6.5 ms with 1 thread, 15 ms with 2); a server's other threads need the other core.
FEW_QUERIES = 32
#: What one forward pass costs beyond its tokens, in characters of padded batch (int8 MiniLM on one
#: thread: ~0.9 ms a call against ~65 us a token, and a token is ~4 characters): see :func:`length_groups`.
CALL_COST_CHARS = 64
#: Query batches for the int8 graph are padded to a multiple of this many tokens (the padding is masked:
#: the vectors do not change). Fresh batches of 1-20 mixed queries, one thread: 3.5 ms a query against
#: 4.4 ms with exact lengths (the runtime prepares kernels for each new shape; 16 sizes are soon all seen).
PAD_TOKENS = 16
#: What :meth:`QueryEmbedder.warm_up` encodes (never cached).
WARM_UP_TEXT = "warm up the query encoder"


class QueryModelMismatchError(FieldtuneError, ValueError):
    """A query encoder whose document route is not the model the index's vectors came from."""


class NothingToRollBackError(FieldtuneError, ValueError):
    """``adapt --rollback`` with no earlier query encoder to go back to."""


def index_document_fingerprint(manifest: IndexManifest) -> str:
    """The document fingerprint of the model the index was encoded with (loads it on the CPU, ~1 s)."""
    return document_fingerprint(load_model(manifest.model.load_spec, device="cpu"))


def check_query_model(model_dir: Path, expected: str, *, index: Path) -> None:
    """Refuse ``model_dir`` unless its document route's fingerprint is ``expected`` (the index's model's)."""
    if not model_dir.is_dir():
        raise QueryModelMismatchError(f"{model_dir}: the query encoder the index at {index} points to is missing; "
                                      "run `fieldtune adapt --index DIR --rollback` or adapt again")
    actual = document_fingerprint(load_model(str(model_dir), device="cpu"))
    if actual != expected:
        raise QueryModelMismatchError(
            f"{model_dir}: its document route (fingerprint {actual[:12]}) is not the model the index at {index} "
            f"was encoded with ({expected[:12]}); its query vectors would not match the stored document vectors. "
            "Adapt a query encoder from this index with `fieldtune adapt`"
        )


def query_encoder(root: Path, manifest: IndexManifest) -> Encoder:
    """The encoder for queries: the adapted one the pointer names (checked), else the index's model."""
    model_dir = manifest.query_model_dir(root)
    spec = manifest.model.load_spec if model_dir is None else str(model_dir)
    if model_dir is not None and manifest.query_model is not None:
        check_query_model(model_dir, manifest.query_model.document_fingerprint, index=root)
    return Encoder(spec, precision=manifest.precision, use_cache=False, show_progress=False)


def next_model_dir(root: Path) -> Path:
    """``query-models/<n>`` with ``n`` one above every folder there (names are never reused)."""
    folder = root / QUERY_MODELS
    numbers = [int(p.name) for p in folder.iterdir() if p.name.isdigit()] if folder.is_dir() else []
    return folder / f"{max(numbers, default=0) + 1:06d}"


def swap_in(root: Path, model_dir: Path, fingerprint: str) -> IndexManifest:
    """Point the index at ``model_dir`` (checked first); the pointer it replaces goes onto the history."""
    check_query_model(model_dir, fingerprint, index=root)
    relative = model_dir.resolve().relative_to(root.resolve()).as_posix()
    with file_lock(root):
        manifest = IndexManifest.read(root)
        old = manifest.query_model or QueryModelPointer()
        pointer = QueryModelPointer(relative, (*old.history, old.path), fingerprint)
        return _write(root, manifest, pointer)


def roll_back(root: Path) -> IndexManifest:
    """Point the index back at the query encoder it used before the last swap (atomically)."""
    with file_lock(root):
        manifest = IndexManifest.read(root)
        old = manifest.query_model
        if old is None or not old.history:
            now = "its own model" if old is None or old.path is None else old.path
            raise NothingToRollBackError(f"{root}: no earlier query encoder to roll back to (searches use {now})")
        pointer = dataclasses.replace(old, path=old.history[-1], history=old.history[:-1])
        return _write(root, manifest, pointer)


def _write(root: Path, manifest: IndexManifest, pointer: QueryModelPointer) -> IndexManifest:
    new = dataclasses.replace(manifest, query_model=pointer)
    new.write(root)
    return new


def query_prompt(backend: Any) -> str:
    """The prompt ``backend`` puts before a query (a graph model's record, or sentence-transformers' prompts)."""
    prompts = getattr(backend, "prompts", None)
    if prompts is None:  # sentence-transformers: the backend wraps the model
        model = getattr(backend, "model", None)
        prompts = getattr(model, "prompts", None) or {}
        if not prompts.get("query") and getattr(model, "default_prompt_name", None):
            return str(prompts.get(model.default_prompt_name, ""))
    return str(prompts.get("query") or "")


def length_groups(lengths: Sequence[int], call_cost: int = CALL_COST_CHARS) -> list[list[int]]:
    """Positions of ``lengths`` split into batches of similar length that cost least to encode in all.

    A batch of ``n`` texts is padded to its longest, so it costs about ``call_cost + n * longest``;
    the best split of the texts sorted by length into consecutive runs is found exactly (dynamic
    programming, quadratic in the number of texts: a server's batch is at most :data:`FEW_QUERIES`).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = [0.0] + [float("inf")] * len(order)  # best[end]: cheapest cost of the first ``end`` texts
    cut = [0] * (len(order) + 1)  # where the last batch of that cheapest split starts
    for end in range(1, len(order) + 1):
        longest = lengths[order[end - 1]]
        for start in range(end):
            cost = best[start] + call_cost + (end - start) * longest
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


class QueryEmbedder:
    """Unit-norm query vectors of one encoder: recent ones from ``cache``, the rest encoded under ``lock``.

    ``lock`` is the index's encoder lock: one encode at a time (two would fight for
    the same cores). Cache look-ups take no encoder lock, so a repeated query is
    answered while another query is being encoded; queries waiting for the lock are
    encoded together (see the module docstring).
    """

    def __init__(self, encoder: Encoder, cache: QueryEmbeddingCache, lock: threading.Lock) -> None:
        self.encoder = encoder
        self.cache = cache
        self._lock = lock
        self._identity: tuple[str, str] | None = None
        self._graph: GraphModel | None = None  # the int8 model with one inference thread, for few queries
        self._waiting: list[tuple[str, Future[np.ndarray]]] = []  # texts whose callers wait for the encoder
        self._waiting_lock = threading.Lock()

    def identity(self) -> tuple[str, str]:
        """(encoder fingerprint, query prompt): with the text, everything a query's vector depends on."""
        if self._identity is None:
            self._identity = (self.encoder.fingerprint(), query_prompt(self.encoder.model))
        return self._identity

    def embed(self, queries: list[str]) -> np.ndarray:
        """float32 ``(len(queries), dim)``: cached vectors where the cache has them, the others encoded once."""
        fingerprint, prompt = self.identity()
        keys = [QueryKey(query, fingerprint, prompt) for query in queries]
        found = [self.cache.get(key) for key in keys]
        missing = list(dict.fromkeys(key for key, vector in zip(keys, found, strict=True) if vector is None))
        fresh: dict[QueryKey, np.ndarray] = {}
        if missing:
            vectors = self.encode([key.text for key in missing])
            for key, vector in zip(missing, vectors, strict=True):
                fresh[key] = vector
                self.cache.put(key, vector)
        if not queries:
            return np.zeros((0, self.encoder.dimension), dtype=np.float32)
        return np.stack([vector if vector is not None else fresh[key] for key, vector in zip(keys, found, strict=True)])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Encode ``texts`` as queries (no cache): a few on one thread, batched with other callers' waiting texts.

        More than :data:`FEW_QUERIES` texts are encoded alone with the encoder's own settings.
        """
        if len(texts) > FEW_QUERIES:
            with self._lock:
                return self.encoder.encode(texts, kind="query")
        mine: list[tuple[str, Future[np.ndarray]]] = [(text, Future()) for text in texts]
        with self._waiting_lock:
            self._waiting.extend(mine)
        with self._lock:
            with self._waiting_lock:  # everything waiting now, ours included unless an earlier caller took it
                batch, self._waiting = self._waiting, []
            if batch:
                self._encode_batch(batch)
        return np.stack([future.result() for _, future in mine])

    def _encode_batch(self, batch: list[tuple[str, Future[np.ndarray]]]) -> None:
        """Encode the waiting texts of several callers (under the encoder lock), in batches of similar length."""
        try:
            texts = [text for text, _ in batch]
            vectors: list[np.ndarray] = [np.empty(0)] * len(texts)
            for group in length_groups([len(text) for text in texts]):
                for position, vector in zip(group, self._encode_few([texts[i] for i in group]), strict=True):
                    vectors[position] = vector
        except BaseException as error:  # every caller in the batch sees the failure, not only this one
            for _, future in batch:
                future.set_exception(error)
            return
        for (_, future), vector in zip(batch, vectors, strict=True):
            future.set_result(vector)

    def _encode_few(self, texts: list[str]) -> np.ndarray:
        """Unit-norm query vectors of a few texts, in one batch on one thread.

        The int8 graph gets its batch padded to a multiple of :data:`PAD_TOKENS` tokens (where
        the model's length allows): OpenVINO prepares its kernels for every new input shape,
        and with exact lengths most batches of a busy server had a shape it had not seen.
        """
        graph = self._single_thread_graph()
        if graph is None:
            with torch_threads(1):
                return self.encoder.encode(texts, kind="query")
        prompt = graph.prompts.get("query", "")
        multiple = PAD_TOKENS if graph.max_seq_length % PAD_TOKENS == 0 else None
        feed = graph.feed([prompt + text for text in texts], pad_to_multiple_of=multiple)
        return self.encoder.rotate(normalize(np.asarray(graph.run_batch(feed), dtype=np.float32)))

    def warm_up(self) -> None:
        """Load the model (and its one-thread int8 graph), compute the cache key's parts, encode once."""
        self.identity()
        self.encode([WARM_UP_TEXT])

    def _single_thread_graph(self) -> GraphModel | None:
        """The int8 model compiled with one inference thread, or None when the encoder is not int8.

        The encoder compiles its int8 model for corpus-sized batches (as many threads as
        cores are idle at load time); queries get their own one-thread compilation of the
        same files (the weights are read twice: ~25 MB for MiniLM).
        """
        model = self.encoder.model
        if not isinstance(model, (OpenVinoModel, OnnxModel)):
            return None
        if self._graph is None:
            self._graph = model if model.threads == 1 else load_int8(model.path, threads=1)
        return self._graph
