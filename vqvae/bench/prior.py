"""The learned prior's speed: log-prob throughput, and the latency of drawing 1 and 64 grids; for a VQ-VAE-2,
the latency of 16 images drawn ancestrally (every level's grid, top first) and decoded."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..config import PriorConfig
from ..prior import GatedPixelCNN
from ..sampling import sample_images


@dataclass
class PriorTimings:
    source: str  # which prior was timed: a checkpoint folder, or "untrained" (same shape, random weights)
    log_prob_grids_per_s: float
    sample_1_ms: float  # median over repeats
    sample_64_s: float


def load(folder: Path) -> tuple[GatedPixelCNN, str]:
    """The folder's learned prior, or an untrained one of the default shape (7x7, K = 512, 10 classes)."""
    if (folder / ckpt.PRIOR).exists():
        return ckpt.load_prior(folder), str(folder)
    return GatedPixelCNN(PriorConfig(512, 7, 7, num_classes=10)).eval(), "untrained"


def _median_s(call, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _labels(prior: GatedPixelCNN, n: int) -> torch.Tensor | None:
    classes = prior.config.num_classes
    return torch.arange(n) % classes if classes else None


def time_prior(folder: Path, repeats: int, batch: int = 512) -> PriorTimings:
    prior, source = load(folder)
    prior.eval()
    generator = torch.Generator().manual_seed(0)
    grids = torch.randint(0, prior.num_embeddings, (batch, *prior.latent_shape), generator=generator)
    labels = _labels(prior, batch)

    def log_prob() -> None:
        with torch.inference_mode():
            prior.log_prob(grids, labels)

    def sample(n: int):
        return lambda: prior.sample(n, labels=_labels(prior, n), seed=0)

    return PriorTimings(
        source=source,
        log_prob_grids_per_s=batch / _median_s(log_prob, repeats),
        sample_1_ms=1000 * _median_s(sample(1), repeats),
        sample_64_s=_median_s(sample(64), repeats),
    )


@dataclass
class HierarchyTimings:
    source: str  # the VQ-VAE-2's folder
    images: int
    threads: int
    sample_s: float  # median over repeats: every level drawn by its learned prior, then decoded


def time_hierarchy(
    folder: Path, repeats: int, images: int = 16, threads: int = 2, device: torch.device | str = "cpu"
) -> HierarchyTimings:
    """`python -m vqvae sample`'s work on a VQ-VAE-2 with learned priors: `images` samples, every class in
    turn, on `threads` threads (and `device`)."""
    loaded = ckpt.load_checkpoint(folder, device)
    levels = len(loaded.model.level_names)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        seconds = _median_s(lambda: sample_images(loaded, "learned", images, None, [1.0] * levels, 0), repeats)
    finally:
        torch.set_num_threads(before)
    return HierarchyTimings(str(folder), images, threads, seconds)
