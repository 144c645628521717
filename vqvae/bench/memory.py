"""Peak memory of a training run, measured in a fresh child process so that nothing else the
benchmark did counts: `python -m vqvae.bench.memory ours|plain STEPS BATCH FILE` reads the
training images from a safetensors file, imports what training needs, then (on Linux) resets
the kernel's peak-RSS mark, trains, and prints {"peak_rss_mb": ..., "start_rss_mb": ...}:
the process's peak resident memory while training, and its resident memory just before.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

SIDES = ("ours", "plain")


def _status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status (Linux), in MiB; None where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Set the peak-RSS mark to the current RSS (Linux: 5 > /proc/self/clear_refs); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """This process's peak resident set size since the last reset (or since it started)."""
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure(images: torch.Tensor, steps: int, batch_size: int) -> dict[str, dict[str, float]]:
    """Per side, a fresh process's RSS (MiB) before and at its peak while training `steps` steps on images."""
    peaks = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "images.safetensors"
        save_file({"images": images.contiguous()}, path)
        for side in SIDES:
            command = [sys.executable, "-m", "vqvae.bench.memory", side, str(steps), str(batch_size), str(path)]
            result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=600)
            peaks[side] = json.loads(result.stdout.strip().splitlines()[-1])
    return peaks


def main(side: str, steps: int, batch_size: int, path: str) -> None:
    from ..config import preset
    from ..data import Dataset, Split
    from .training import ours_throughput, plain_throughput

    images = load_file(path)["images"]
    data = Dataset(images, torch.full((len(images),), -1), [])
    run = ours_throughput if side == "ours" else plain_throughput
    start = _status_mb("VmRSS") if reset_peak() else None
    run(preset("mnist"), Split(train=data, test=data), batch_size, warmup=1, steps=steps)
    print(json.dumps({"peak_rss_mb": round(peak_rss_mb(), 1), "start_rss_mb": start and round(start, 1)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
