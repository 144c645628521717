"""What every prior shares when it draws codes: one categorical draw, and the checks of a request.

Every prior samples through `sample_categorical`, so temperature and top-k mean the same for
all of them, and draws from a local generator, never the global RNG (training's).
"""

from __future__ import annotations

import math

import torch


def sample_categorical(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one code per row of logits (N, K) -> (N,) int64.

    temperature 0 (or top_k 1) takes the argmax; top_k keeps the k most likely codes
    (more on ties). The draw uses `generator`, never the global RNG: one uniform number
    per row, mapped through the cumulative distribution (much cheaper than multinomial).
    """
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=1)
    logits = logits.double()  # float64, so the running sum reaches its total
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[1]:
        kth = logits.topk(top_k, dim=1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    cdf = logits.softmax(dim=1).cumsum(dim=1)  # (N, K)
    u = torch.rand(cdf.shape[0], 1, generator=generator, dtype=cdf.dtype).to(cdf.device) * cdf[:, -1:]
    # right=True: a code of probability 0 adds nothing to the cdf, so no u lands on it
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1).squeeze(1)


def check_sampling(temperature: float, top_k: int | None, n: int) -> None:
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")


def generator(seed: int | None) -> torch.Generator:
    """A local RNG: seeded for a reproducible draw, else from the OS. The global RNG is left alone."""
    drawn = torch.Generator()
    if seed is None:
        drawn.seed()
    else:
        drawn.manual_seed(seed)
    return drawn


def check_indices(indices: torch.Tensor, num_embeddings: int, latent_shape: tuple[int, int]) -> None:
    if indices.dtype != torch.int64:
        raise ValueError(f"indices must be int64, got {indices.dtype}")
    if indices.dim() != 3 or tuple(indices.shape[1:]) != latent_shape:
        h, w = latent_shape
        raise ValueError(f"indices must have shape (B, {h}, {w}), got {tuple(indices.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_embeddings):
        raise ValueError(f"indices must lie in [0, {num_embeddings})")


def check_given(given: torch.Tensor | None, n: int, num_embeddings: int, latent_shape: tuple[int, int]) -> torch.Tensor:
    """The codes to keep, (n, h, w) int64, -1 where a code is to be drawn."""
    if given is None:
        return torch.full((n, *latent_shape), -1, dtype=torch.int64)
    if given.dtype != torch.int64 or tuple(given.shape) != (n, *latent_shape):
        raise ValueError(f"given must be int64 of shape ({n}, {latent_shape[0]}, {latent_shape[1]})")
    if given.numel() and (int(given.min()) < -1 or int(given.max()) >= num_embeddings):
        raise ValueError(f"given must hold codes in [0, {num_embeddings}) or -1 (to sample)")
    return given.cpu()
