"""The two priors that need no network, and the interface every prior offers.

- `UniformPrior`: every code 1/K at every position, the prior the VQ-VAE trains with
  (van den Oord et al. 2017, section 3.1: KL = log K).
- `UnigramPrior`: the training set's code frequencies, the same at every position.
Both show, beside the learned prior (network.py), why a learned prior matters (section 3.3).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
from torch import nn

from .draw import check_given, check_indices, check_sampling, generator, sample_categorical


class Prior(Protocol):
    """What every prior over (h, w) grids of K codes offers."""

    @property
    def num_embeddings(self) -> int: ...

    @property
    def latent_shape(self) -> tuple[int, int]: ...

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


def _fill_independent(
    log_probs: torch.Tensor,
    n: int,
    latent_shape: tuple[int, int],
    temperature: float,
    top_k: int | None,
    seed: int | None,
    given: torch.Tensor | None,
) -> torch.Tensor:
    """Every free position drawn independently from one distribution log_probs (K,)."""
    check_sampling(temperature, top_k, n)
    given = check_given(given, n, log_probs.shape[0], latent_shape)
    logits = log_probs.cpu().expand(given.numel(), -1)  # (K,) -> (n*h*w, K)
    drawn = sample_categorical(logits, temperature, top_k, generator(seed)).view_as(given)
    return torch.where(given >= 0, given, drawn)


class UniformPrior(nn.Module):
    """p(z) = 1/K at every position: the prior the VQ-VAE trains with (section 3.1)."""

    def __init__(self, num_embeddings: int, latent_shape: tuple[int, int]):
        super().__init__()
        if num_embeddings < 2 or min(latent_shape) < 1:
            raise ValueError("a uniform prior needs num_embeddings >= 2 and a grid of at least 1x1")
        self.num_embeddings = num_embeddings
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> (B,) -h*w*log K nats; labels are ignored."""
        check_indices(indices, self.num_embeddings, self.latent_shape)
        h, w = self.latent_shape
        return torch.full((indices.shape[0],), -h * w * math.log(self.num_embeddings), device=indices.device)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n grids (n, h, w) int64 of independent uniform codes; labels are ignored."""
        log_probs = torch.full((self.num_embeddings,), -math.log(self.num_embeddings))
        return _fill_independent(log_probs, n, self.latent_shape, temperature, top_k, seed, given)


class UnigramPrior(nn.Module):
    """p(z) = prod over positions of p(k), with p(k) the training set's code frequencies."""

    def __init__(self, probs: torch.Tensor, latent_shape: tuple[int, int]):
        """probs: (K,) positive; normalised to sum to 1."""
        super().__init__()
        if probs.dim() != 1 or probs.shape[0] < 2 or not bool((probs > 0).all()):
            raise ValueError("probs must be a (K,) tensor of positive numbers, K >= 2")
        if min(latent_shape) < 1:
            raise ValueError("latent_shape must be at least 1x1")
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))
        self.register_buffer("log_probs", (probs / probs.sum()).float().log())  # (K,)

    @classmethod
    def fit(cls, indices: torch.Tensor, num_embeddings: int, smoothing: float = 1.0) -> UnigramPrior:
        """Count codes in indices (N, h, w) int64 in [0, K), adding `smoothing` to every count (Laplace)."""
        if not (math.isfinite(smoothing) and smoothing > 0):
            raise ValueError("smoothing must be > 0, so that no code has probability zero")
        if num_embeddings < 2:
            raise ValueError("num_embeddings (K) must be at least 2")
        if indices.dim() != 3:
            raise ValueError(f"indices must have shape (N, h, w), got {tuple(indices.shape)}")
        check_indices(indices, num_embeddings, (indices.shape[1], indices.shape[2]))
        counts = torch.bincount(indices.flatten().cpu(), minlength=num_embeddings).double() + smoothing  # (K,)
        return cls(counts, (indices.shape[1], indices.shape[2]))

    @property
    def num_embeddings(self) -> int:
        return self.log_probs.shape[0]

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> (B,) sum of log p(k) in nats; labels are ignored."""
        check_indices(indices, self.num_embeddings, self.latent_shape)
        return self.log_probs[indices].sum(dim=(1, 2))  # (B, h, w) -> (B,)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n grids (n, h, w) int64, each position drawn independently from p(k); labels are ignored."""
        return _fill_independent(self.log_probs, n, self.latent_shape, temperature, top_k, seed, given)
