"""The machine the benchmark ran on, and its float32 peak: a large matmul's GFLOP/s on the same threads."""

from __future__ import annotations

import os
import platform
import time

import torch


def info() -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_name(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of (size x size) @ (size x size) in float32: 2 size^3 operations each."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    out = torch.empty(size, size)
    torch.mm(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9
