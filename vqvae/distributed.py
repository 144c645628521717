"""Data-parallel training across processes and machines, by PyTorch's own machinery.

`torchrun --nproc-per-node N -m vqvae train ...` starts N processes (ranks), each with RANK,
WORLD_SIZE and LOCAL_RANK in its environment; each joins one process group (gloo on CPUs, NCCL
on GPUs). Every rank draws the same batch of the run's batch size for step s (train.py's
EpochSampler) and trains on its slice of it, so the batch means one thing for any number of
processes and a run may resume with another number. DistributedDataParallel averages the
networks' gradients; what DDP does not see is kept equal here:

- the codebook's EMA statistics (cluster sizes and sums) and code counts are summed over the
  ranks every step, so each rank's codebook follows the whole batch (quantizer.py);
- a codebook initialisation or dead-code restart is drawn on rank 0 from every rank's encoder
  outputs and broadcast, so every rank holds the same codebook after every step;
- the run's clock and any rank's stop request are agreed every step, so all ranks take the same
  learning rate and stop at the same step (a minutes-long run, Ctrl-C, SIGTERM).

Rank 0 alone writes the folder (saves, history, progress). Outside a process group every function
here is a no-op, so one process runs exactly the code it always did.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import TrainingError


@dataclass(frozen=True)
class Shard:
    """This process's place in a data-parallel run: rank r of world_size, taking part r of each batch."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # its rank on its own machine (which GPU it takes)

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes the folder and reports progress."""
        return self.rank == 0

    def check_batch(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            raise TrainingError(
                f"the batch of {batch_size} does not split evenly across {self.world_size} processes; "
                f"choose a batch size that is a multiple of {self.world_size}"
            )

    def part(self, batch_size: int) -> slice:
        """This rank's rows of a batch: consecutive, so the ranks' parts in rank order are the batch."""
        share = batch_size // self.world_size
        return slice(self.rank * share, (self.rank + 1) * share)


def shard_from_environment() -> Shard:
    """The shard torchrun's variables describe; one whole process without them."""
    try:
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        local = int(os.environ.get("LOCAL_RANK", 0))
    except ValueError as error:
        raise TrainingError(f"RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers: {error}") from error
    if not 0 <= rank < world:
        raise TrainingError(f"RANK {rank} is not within WORLD_SIZE {world}")
    return Shard(rank, world, local)


_device = torch.device("cpu")  # where this process's collectives put their tensors


def join(shard: Shard, device: torch.device) -> None:
    """Join the run's process group (from torchrun's MASTER_ADDR and MASTER_PORT); nothing for one process."""
    global _device
    if shard.world_size == 1 or dist.is_initialized():
        return
    _device = device
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_across_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor summed over every rank (in place), on every rank."""
    if active():
        dist.all_reduce(tensor)
    return tensor


def rows_of_every_rank(z: torch.Tensor) -> torch.Tensor:
    """z (N, D) of every rank, concatenated in rank order (N * world, D): the whole batch's rows."""
    if not active():
        return z
    parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, z.contiguous())
    return torch.cat(parts)


def from_main(tensor: torch.Tensor) -> torch.Tensor:
    """Rank 0's tensor (in place) on every rank."""
    if active():
        dist.broadcast(tensor, src=0)
    return tensor


def agree(elapsed_s: float, stop: bool) -> tuple[float, bool]:
    """Rank 0's clock, and whether any rank was asked to stop: one small all-reduce per step."""
    if not active():
        return elapsed_s, stop
    main = dist.get_rank() == 0
    both = torch.tensor([elapsed_s if main else 0.0, float(stop)], dtype=torch.float64, device=_device)
    dist.all_reduce(both)
    return float(both[0]), bool(both[1] > 0)


def mean_across_ranks(values: list[float]) -> list[float]:
    """Each value averaged over the ranks (NaN anywhere makes it NaN everywhere)."""
    if not active():
        return values
    both = torch.tensor(values, dtype=torch.float64, device=_device)
    dist.all_reduce(both)
    return (both / dist.get_world_size()).tolist()


def data_parallel(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The module a rank runs its forward pass through: DistributedDataParallel, which averages the
    gradients over the ranks in backward, or the model itself in one process. Buffers are not
    broadcast on each forward: the codebook's are kept equal by the quantiser itself."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    # A convolution over one input channel gets its weight's gradient with the strides of a channels-last
    # tensor; for a dimension of size 1 that is the same memory as DDP's bucket, which warns all the same.
    warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides", category=UserWarning)
    device_ids = [device] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, forward_sync_buffers=False)


def barrier() -> None:
    if active():
        dist.barrier()
