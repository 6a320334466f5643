r"""Data-parallel training across processes: ``torchrun --nproc_per_node=N -m ddpm_lib.train ...``.

torchrun starts N copies of the trainer and tells each its ``RANK``, ``WORLD_SIZE`` and
``LOCAL_RANK`` through the environment; without them (a plain ``python -m ddpm_lib.train``) the
world is one process and nothing here does anything.

The scheme keeps a run's trajectory independent of the number of processes (up to the rounding of
a different summation order): ``config.batch_size`` is the *global* batch :math:`B`; every rank
draws the same global indices, times :math:`t` and noises :math:`\epsilon` from identically seeded
generators and keeps its own contiguous shard of :math:`B / N` examples. Each rank's loss is the
mean over its shard and ``DistributedDataParallel`` averages the gradients, so the update is the
one of the mean over the global batch, as in a single process. Rank 0 alone writes checkpoints,
outputs and log lines; every rank reads the checkpoint on resume, and a run may be resumed with
another number of processes."""

from __future__ import annotations

import os
from typing import NamedTuple

import torch
import torch.distributed as dist


class World(NamedTuple):
    """This process's place: ``rank`` in ``0..size-1`` and ``local_rank`` on its machine."""

    rank: int
    size: int
    local_rank: int

    @property
    def main(self) -> bool:
        """True on the process that writes files and logs (rank 0)."""
        return self.rank == 0


SINGLE = World(0, 1, 0)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, got {raw!r}") from None


def world_from_env() -> World:
    """The world torchrun describes in the environment (one process if it describes none)."""
    size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if size < 1 or not 0 <= rank < size or local < 0:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={size}")
    return World(rank, size, local)


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group (NCCL for CUDA, gloo on the CPU) and return this rank's device:
    ``cuda:LOCAL_RANK`` when ``device`` is CUDA without an explicit index."""
    if world.size == 1:
        return device
    if device.type == "cuda":
        if device.index is None or device.index == 0:
            device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != world.size:
        raise ValueError(
            f"the process group has {dist.get_world_size()} processes, WORLD_SIZE says {world.size}"
        )
    return device


def stop(world: World) -> None:
    """Leave the process group (if this process started one)."""
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def shard(world: World, batch: int) -> slice:
    """This rank's contiguous part of a global batch of ``batch`` examples."""
    if batch % world.size:
        raise ValueError(
            f"batch_size={batch} must be divisible by the number of processes {world.size}"
        )
    per = batch // world.size
    return slice(world.rank * per, (world.rank + 1) * per)


def mean(world: World, values: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``values`` over the ranks (``values`` itself for one process)."""
    if world.size == 1:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world.size


def agree(world: World, flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "the time budget is spent"), so all ranks stop at
    the same step."""
    if world.size == 1:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(world: World) -> None:
    if world.size > 1:
        dist.barrier()
