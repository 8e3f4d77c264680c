"""Training in several processes (``torchrun``, ``accelerate launch``): who this process is, and agreeing across them.

A launcher starts one process per GPU (or per CPU share) and tells each its
place through the environment (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``); the
Hugging Face trainer reads the same variables and wraps the model in
DistributedDataParallel (``gloo`` on CPUs, ``nccl`` on GPUs: :func:`ddp_backend`).
What fieldtune adds on top:

- in-batch negatives gathered across processes (``gather_across_devices`` in the
  MultipleNegativesRankingLoss family), so N processes of batch B train as one
  batch of N x B, not N batches of B;
- one decision for all: the time-budget plan and the stop at the deadline are
  made by rank 0 and broadcast (:func:`from_main`), since processes whose clocks
  or timings differ by a step would otherwise wait for each other forever;
- one writer: the model, its record (which holds the world size) and the
  checkpoints' clean-up on rank 0 only (:func:`is_main`), the others waiting at
  a barrier until the model is published.

GPU cluster recipes (one node of 8 GPUs; two nodes)::

    torchrun --standalone --nproc_per_node=8 -m fieldtune train CORPUS --out DIR
    torchrun --nnodes=2 --node_rank=$NODE --nproc_per_node=8 \\
        --rdzv_backend=c10d --rdzv_endpoint=$HEAD:29500 -m fieldtune train CORPUS --out DIR
"""

from __future__ import annotations

import os
from collections.abc import Sequence

WORLD_SIZE_ENV = "WORLD_SIZE"
RANK_ENV = "RANK"


def world_size() -> int:
    """Processes in this training run (1 when not launched by torchrun or accelerate)."""
    return max(1, int(os.environ.get(WORLD_SIZE_ENV, "1") or 1))


def rank() -> int:
    """This process's place among them (0 is the one that writes)."""
    return int(os.environ.get(RANK_ENV, "0") or 0)


def is_main() -> bool:
    return rank() == 0


def ddp_backend(device: str) -> str:
    """The collective library: NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device == "cuda" else "gloo"


def _group_ready() -> bool:
    import torch.distributed as dist

    return world_size() > 1 and dist.is_available() and dist.is_initialized()


def from_main(values: Sequence[float]) -> list[float]:
    """Rank 0's ``values`` on every rank (each rank passes its own; a single process gets its own back).

    Called by every rank at the same point of the run, as every collective must be.
    """
    if not _group_ready():
        return [float(value) for value in values]
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return [float(value) for value in tensor.cpu().tolist()]


def barrier() -> None:
    """Wait until every rank reaches this point (nothing in a single process)."""
    if _group_ready():
        import torch.distributed as dist

        dist.barrier()
