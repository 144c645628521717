"""Where and how a job computes: its device (the CPU, a CUDA GPU, Apple's MPS), the precision of
its matrix products, and its share of a data-parallel run (distributed.py).

Precision is float32, or bfloat16 / float16 under torch.autocast: the convolutions run in the
low precision, while the codebook search, its EMA statistics and every loss stay in float32
(quantizer.py turns autocast off around them). float16 needs a GradScaler, so that small
gradients do not underflow; bfloat16 has float32's range and needs none.

None of it is saved: a checkpoint is device-free, so a run begun on a GPU loads, evaluates and
resumes on a CPU and back.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch

from .config import DEVICES, PRECISIONS
from .distributed import Shard
from .errors import TrainingError

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    precision: str = "fp32"  # "fp32", "bf16" or "fp16"
    shard: Shard = field(default_factory=Shard)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass's context: autocast to the low precision, or nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=AUTOCAST_DTYPES[self.precision])

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling for fp16 (a no-op scaler otherwise)."""
        return torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def to_device(self, batch: Any) -> Any:
        """A batch (a tensor, or a tuple of tensors and None) on this runtime's device."""
        if isinstance(batch, tuple):
            return tuple(self.to_device(part) for part in batch)
        if isinstance(batch, torch.Tensor):
            return batch.to(self.device, non_blocking=self.device.type == "cuda")
        return batch

    def describe(self) -> str:
        where = str(self.device) + ("" if self.shard.world_size == 1 else f", {self.shard.world_size} processes")
        return f"{where}, {self.precision}"


def available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return kind == "cpu"


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """ "auto" is a CUDA GPU if there is one, else MPS, else the CPU. Under torchrun each process on a
    machine takes its own GPU, the one of its local rank."""
    if name not in DEVICES:
        raise TrainingError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    if name == "auto":
        name = next(kind for kind in ("cuda", "mps", "cpu") if available(kind))
    if not available(name):
        what = {"cuda": "no CUDA GPU is visible to PyTorch", "mps": "Apple's MPS is not available here"}[name]
        raise TrainingError(f"--device {name} was asked for, but {what}; use --device cpu (or auto)")
    if name == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise TrainingError(f"process {local_rank} on this machine has no GPU of its own: {count} are visible")
        return torch.device("cuda", local_rank)
    return torch.device(name)


def pick_precision(name: str, device: torch.device) -> str:
    """ "auto" is bf16 on a GPU that computes it natively, else fp32: a CPU without bf16 arithmetic of its
    own (most laptops) runs bf16 slower than fp32 (docs/gpus-and-processes.md). fp16 is refused off CUDA."""
    if name not in PRECISIONS:
        raise TrainingError(f"unknown precision {name!r}: choose one of {', '.join(PRECISIONS)}")
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name == "fp16" and device.type != "cuda":
        raise TrainingError(
            f"--precision fp16 needs a CUDA GPU (its loss scaling is CUDA's); on {device.type} use bf16 or fp32"
        )
    if name == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise TrainingError("this GPU does not compute bfloat16; use --precision fp16 or fp32")
    return name


def pick_runtime(device: str = "auto", precision: str = "auto", shard: Shard | None = None) -> Runtime:
    shard = shard or Shard()
    chosen = pick_device(device, shard.local_rank)
    return Runtime(chosen, pick_precision(precision, chosen), shard)
