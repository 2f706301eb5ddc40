"""Distributed data parallel on CPU (gloo) for ``torchrun --nproc-per-node N``.

The training script is the same with one process or N: :func:`distributed` starts the process
group when torchrun's environment variables are set, and :func:`context` tells the training loop
its rank and the world size. Each rank trains on its share of every batch's learners; DDP
all-reduces the gradients, so all ranks hold the same weights after every step; rank 0 evaluates,
logs and registers the model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistContext", "all_reduce_sum", "broadcast_from_main", "context", "distributed", "launched_by_torchrun"]


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when torchrun (``torch.distributed.run``) started this process with a world of 2+."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def context() -> DistContext:
    """Rank and world size of this process (rank 0 of 1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


@contextmanager
def distributed() -> Iterator[DistContext]:
    """Join the gloo process group when launched by torchrun; a no-op otherwise.

    The training loop sets each process's intra-op threads (``training.threads``, default 1).
    """
    if not launched_by_torchrun() or (dist.is_initialized()):
        yield context()
        return
    dist.init_process_group("gloo")
    try:
        yield context()
    finally:
        dist.destroy_process_group()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum ``values`` over ranks (identity without a process group)."""
    if not context().active:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def broadcast_from_main(values: Sequence[float]) -> list[float]:
    """Rank 0's ``values`` on every rank (every rank passes a list of the same length)."""
    if not context().active:
        return [float(v) for v in values]
    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()
