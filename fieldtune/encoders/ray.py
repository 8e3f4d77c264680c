"""The Ray encoder backend: a corpus encoded by a pool of Ray actors (Ray Data ``map_batches``), one model each.

Chosen by name (``Encoder(..., backend="ray")``, ``fieldtune index --ray [ADDRESS]``;
``fieldtune build --ray`` routes the build's corpus encodes here, see :func:`corpus_on_ray`),
never by what a model directory holds. Documents go through Ray Data: the texts
become a dataset split into blocks, and ``map_batches`` sends them to a pool of
actors of :class:`DocumentActor`, each loading the model once (the
sentence-transformers backend, the same code a local encode runs, so the
vectors agree with a local encode of the same model at the same precision). On
a cluster with GPUs each actor takes one (``num_gpus=1``) and runs on CUDA; on
CPUs each takes one core (``num_cpus=1``) and one torch thread, so N actors use
N cores without oversubscribing them. Queries are few and latency-bound: they
are encoded in this process, by the same model.

Where Ray runs is set by :func:`configure` (the seam's ``load(ref, precision)``
has no room for options): a local Ray started here with ``workers`` CPUs by
default, or a running cluster at ``address`` (``ray://host:10001`` or
``host:6379``; fieldtune must be installed on its nodes). Vectors come back in
the order of the texts. :func:`write_shards` keeps them as Parquet shards keyed
by chunk id (Ray's ``write_parquet``; its ``write_lance`` fails with pylance 14),
which a store can bulk-load and :func:`read_shards` reads back.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fieldtune.encoders.sentence_transformers import SentenceTransformersBackend
from fieldtune.encoders.sentence_transformers import load as load_local
from fieldtune.errors import FieldtuneError, require_extra
from fieldtune.models import ModelRef, host_reachable

logger = logging.getLogger("fieldtune.encoders.ray")

RAY_EXTRA = "ray"
#: blocks per actor: enough that a slow actor does not hold the tail of the corpus, few enough to stay cheap
BLOCKS_PER_WORKER = 4
#: texts per model call inside an actor (the Encoder's batch size is for the local backend)
ACTOR_BATCH = 32
#: blocks queued on an actor at a time: with Ray's default (4) the first actor ready took every block of
#: a small corpus while the others were still loading the model, and a free actor could not take queued work
TASKS_IN_FLIGHT_PER_ACTOR = 1
#: niceness of a local Ray's workers: Ray's default (15) made each actor yield most of its core to any other
#: job, so 2 actors lost more to a machine's other work than the single-process encode they replace (nice 0)
LOCAL_WORKER_NICENESS = 0


class RayEncodingError(FieldtuneError):
    """Ray could not be started or reached, or its workers failed; the message names the address."""


@dataclass(frozen=True)
class RaySettings:
    """Where and how wide Ray encodes.

    ``address``: a running cluster's address, or None for a local Ray started by
    this process. ``workers``: actors in the pool (None: one per GPU where the
    cluster has GPUs, else one per CPU Ray offers). ``threads``: torch threads
    per CPU actor (1: an actor holds one core). ``shards``: where an index build
    also writes the vectors as Parquet shards keyed by chunk id (None: not written).
    """

    address: str | None = None
    workers: int | None = None
    threads: int = 1
    shards: Path | None = None


_settings = RaySettings()
#: set inside :func:`corpus_on_ray`: Encoders made there without a backend name encode their documents on Ray
_routing = False


def configure(settings: RaySettings) -> None:
    """Set where the next loaded Ray backends run (the CLI's ``--ray [ADDRESS]`` calls this)."""
    global _settings
    if settings.workers is not None and settings.workers < 1:
        raise RayEncodingError(f"Ray workers must be at least 1 (got {settings.workers})")
    _settings = settings


def current_settings() -> RaySettings:
    return _settings


@contextmanager
def corpus_on_ray(settings: RaySettings) -> Iterator[None]:
    """Within the block, the corpus encodes of code that names no backend run on Ray (``fieldtune build --ray``).

    A build encodes its corpus in several stages (mining, the teacher's pool, the gate, the
    evaluation), each through an :class:`~fieldtune.encoding.Encoder` that names no backend;
    threading a backend through every stage would touch them all, so instead an Encoder made in
    this block for a model that sentence-transformers runs takes the Ray backend (see
    :func:`routed_backend`): its documents go to the actor pool, its queries stay here. An ONNX
    or OpenVINO model keeps its own backend. A cluster address that does not answer fails here,
    before any stage runs; a Ray started inside the block is shut down at its end.
    """
    global _routing
    ray = require_extra("ray", RAY_EXTRA)
    if settings.address:
        check_reachable(settings.address)
    previous, was_routing, was_running = _settings, _routing, ray.is_initialized()
    configure(settings)
    _routing = True
    try:
        yield
    finally:
        configure(previous)
        _routing = was_routing
        if not was_running and ray.is_initialized():
            ray.shutdown()


def routed_backend(name: str) -> str:
    """The backend an Encoder that names none uses: ``ray`` for a sentence-transformers model inside
    :func:`corpus_on_ray`, else ``name`` (the one the registry picked)."""
    return "ray" if _routing and name == "sentence-transformers" else name


def start(settings: RaySettings) -> Any:
    """The ``ray`` module, connected: to ``settings.address``, or to a local Ray of ``workers`` CPUs.

    A Ray already started in this process is reused (a test or a notebook may hold one), but a
    cluster address is checked first: a typo must not silently run the job on the Ray at hand.
    """
    ray = require_extra("ray", RAY_EXTRA)
    if settings.address:
        check_reachable(settings.address)
    if ray.is_initialized():
        return ray
    try:
        if settings.address:
            ray.init(address=settings.address, log_to_driver=False)
        else:
            cpus = settings.workers or os.cpu_count() or 1
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     _system_config={"worker_niceness": LOCAL_WORKER_NICENESS})
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = settings.address or "a local Ray"
        raise RayEncodingError(f"could not start or reach Ray at {where}: {error}") from error
    return ray


class DocumentActor:
    """One actor of the pool: loads the model once, then embeds every batch Ray Data sends it."""

    def __init__(self, ref: ModelRef, precision: str, threads: int | None) -> None:
        import torch

        if threads and not torch.cuda.is_available():
            torch.set_num_threads(threads)
        self.backend = load_local(ref, precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(text) for text in batch["text"]]
        vectors = self.backend.encode_document(texts, batch_size=ACTOR_BATCH, show_progress=False)
        return {"position": batch["position"], "vector": np.asarray(vectors, dtype=np.float32)}


class RayBackend:
    """Documents encoded by a Ray actor pool, queries by the same model in this process."""

    def __init__(self, ref: ModelRef, precision: str, settings: RaySettings) -> None:
        self.ref = ref
        self.precision = precision
        self.settings = settings
        self._local: SentenceTransformersBackend | None = None

    @property
    def local(self) -> SentenceTransformersBackend:
        """The model in this process: its tokenizer, its dimension and the queries."""
        if self._local is None:
            self._local = load_local(self.ref, self.precision)
        return self._local

    @property
    def max_seq_length(self) -> int:
        return self.local.max_seq_length

    @property
    def tokenizer(self) -> Any:
        return self.local.tokenizer

    def get_embedding_dimension(self) -> int:
        return self.local.get_embedding_dimension()

    def encode_query(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        return self.local.encode_query(texts, batch_size=batch_size, show_progress=show_progress)

    def encode_document(self, texts: list[str], *, batch_size: int, show_progress: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.get_embedding_dimension()), dtype=np.float32)
        ray = start(self.settings)
        ray.data.DataContext.get_current().enable_progress_bars = show_progress
        size, resources = self.pool(ray)
        blocks = self.blocks(texts, size)
        size = min(size, len(blocks))  # an actor without a block would only idle
        logger.info("encoding %d texts on Ray (%d actors, %s each)", len(texts), size,
                    "1 GPU" if "num_gpus" in resources else "1 CPU")
        encoded = ray.data.from_arrow(blocks).map_batches(
            DocumentActor, fn_constructor_args=(self.ref, self.precision, self.settings.threads),
            batch_size=max(ACTOR_BATCH, batch_size), batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=TASKS_IN_FLIGHT_PER_ACTOR),
            **resources,
        )
        return self._collect(encoded, len(texts))

    def pool(self, ray: Any) -> tuple[int, dict[str, int]]:
        """The actor pool's size and each actor's resources: one GPU where the cluster has GPUs, else one CPU."""
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if gpus:
            return self.settings.workers or gpus, {"num_gpus": 1}
        cpus = max(1, int(resources.get("CPU", 1)))
        return min(self.settings.workers or cpus, cpus), {"num_cpus": 1}

    @staticmethod
    def blocks(texts: list[str], workers: int) -> list[Any]:
        """The texts with their positions, in Arrow blocks enough for every actor to share the work."""
        import pyarrow as pa

        size = max(ACTOR_BATCH, math.ceil(len(texts) / (workers * BLOCKS_PER_WORKER)))
        table = pa.table({"position": np.arange(len(texts), dtype=np.int64), "text": texts})
        return [table.slice(start, size) for start in range(0, len(texts), size)]

    @staticmethod
    def _collect(encoded: Any, count: int) -> np.ndarray:
        """The vectors in the order of the texts (blocks may finish in any order)."""
        positions, vectors = [], []
        try:
            for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
                positions.append(np.asarray(batch["position"]))
                vectors.append(np.asarray(batch["vector"], dtype=np.float32))
        except Exception as error:  # a worker's failure reaches here as one of Ray's many error types
            raise RayEncodingError(f"Ray encoding failed: {error}") from error
        order = np.concatenate(positions)
        if len(order) != count or not np.array_equal(np.sort(order), np.arange(count)):
            raise RayEncodingError(f"Ray returned {len(order)} vectors for {count} texts")
        result = np.empty((count, vectors[0].shape[1]), dtype=np.float32)
        result[order] = np.concatenate(vectors)
        return result


def write_shards(directory: Path, chunk_ids: list[str], vectors: np.ndarray) -> list[Path]:
    """Write ``(chunk_id, vector)`` rows as Parquet shards under ``directory`` (Ray's ``write_parquet``).

    One shard per block, named by Ray; a store bulk-loads them, :func:`read_shards` reads them back.
    """
    import pyarrow as pa

    if len(chunk_ids) != len(vectors):
        raise ValueError(f"{len(chunk_ids)} chunk ids for {len(vectors)} vectors")
    ray = start(_settings)
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))
    table = pa.table({
        "chunk_id": pa.array(chunk_ids, type=pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
    })
    ray.data.from_arrow(table).write_parquet(str(directory))
    return sorted(Path(directory).glob("*.parquet"))


def read_shards(directory: Path) -> tuple[list[str], np.ndarray]:
    """The chunk ids and float32 vectors of the Parquet shards under ``directory``."""
    import pyarrow.parquet as pq

    table = pq.read_table(str(directory))
    column = table.column("vector").combine_chunks()
    width = column.type.list_size
    vectors = column.values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, width)
    return [str(value) for value in table.column("chunk_id").to_pylist()], vectors


#: seconds to wait for a cluster's port to answer before saying it does not (Ray itself retries for minutes)
CONNECT_TIMEOUT = 10.0


def check_reachable(address: str) -> None:
    """Fail at once, naming the address, when nothing answers at a cluster's ``host:port``."""
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto" and other forms Ray resolves itself
    if not host_reachable(host, int(port), timeout=CONNECT_TIMEOUT):
        raise RayEncodingError(
            f"no Ray cluster answers at {address} (nothing listening on {host}:{port} within {CONNECT_TIMEOUT:g}s); "
            "start one with `ray start --head`, or use --ray local"
        )


def handles(ref: ModelRef) -> bool:
    """Never by default: Ray is chosen by name, for a corpus worth a cluster."""
    return False


def load(ref: ModelRef, precision: str) -> RayBackend:
    """A Ray backend for ``ref`` with the settings of :func:`configure` (Ray starts at the first corpus encode)."""
    require_extra("ray", RAY_EXTRA)
    return RayBackend(ref, precision, _settings)
