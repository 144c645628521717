"""Ancestral sampling of a hierarchy's codes (Razavi et al. 2019, section 3.3 and Algorithm 2).

Each level has a prior of its own, the gated PixelCNN of prior/network.py. The top level's models
its grid alone; each level below is conditioned on the codes of every level above it, given to it
as one map: each level's code vectors (its codebook rows), brought to this level's grid by nearest
neighbours and stacked on channels. Sampling draws the top grid first, then each level below
given the ones drawn above it; every level has its own temperature and seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .config import VQVAE2Config
from .hierarchy import VQVAE2
from .prior import GatedPixelCNN


def condition_channels(config: VQVAE2Config, level: str) -> int:
    """M of the map a level's prior hears: D for every level above it (0 for the top)."""
    return config.quantizer.embedding_dim * config.level_names.index(level)


@torch.no_grad()
def condition_map(model: VQVAE2, above: list[torch.Tensor], level: str) -> torch.Tensor | None:
    """What the prior of `level` is conditioned on, from the grids of every level above it, top first
    (each (B, h_j, w_j) int64): (B, D * levels above, h, w) at the level's grid; None for the top level."""
    names = list(model.level_names)
    if level not in names:
        raise ValueError(f"this VQ-VAE-2 has no level {level!r}; its levels are {', '.join(names)}")
    index = names.index(level)
    if len(above) != index:
        wanted = ", ".join(names[:index]) or "none"
        raise ValueError(f"the {level} level is conditioned on the grids above it ({wanted}), not on {len(above)}")
    if index == 0:
        return None
    shape = model.latent_shapes[level]
    maps = []
    for name, quantizer, grid in zip(names, model.quantizers, above):
        expected = model.latent_shapes[name]
        if grid.dtype != torch.int64 or grid.dim() != 3 or tuple(grid.shape[1:]) != expected:
            raise ValueError(
                f"the {name} grid given to the {level} level's prior must be int64 of shape (B, {expected[0]}, "
                f"{expected[1]}), got {grid.dtype} {tuple(grid.shape)}"
            )
        if grid.shape[0] != above[0].shape[0]:
            raise ValueError("the grids of the levels above must hold the same number of grids")
        if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= model.num_embeddings):
            raise ValueError(f"the {name} grid's codes must lie in [0, {model.num_embeddings})")
        vectors = quantizer.embed(grid)  # (B, h_j, w_j) -> (B, D, h_j, w_j)
        maps.append(F.interpolate(vectors, size=shape, mode="nearest"))  # -> (B, D, h, w)
    return torch.cat(maps, dim=1)


@dataclass
class LevelDraw:
    """How one level is drawn: temperature 0 (or top_k 1) takes the most likely code at each step."""

    temperature: float = 1.0
    seed: int | None = None
    top_k: int | None = None


@dataclass
class AncestralSample:
    grids: list[torch.Tensor]  # each level's (n, h_i, w_i) int64, top first
    log_probs: list[torch.Tensor]  # each level's (n,) log p(z_level | levels above, label) in nats


def sample_levels(
    model: VQVAE2,
    priors: dict[str, GatedPixelCNN],
    n: int,
    labels: torch.Tensor | None = None,
    draws: dict[str, LevelDraw] | None = None,
    given: dict[str, torch.Tensor] | None = None,
) -> AncestralSample:
    """Draw n code grids of every level, top first, each level given the ones above it.

    priors: a learned prior for every level that is not given whole. labels: (n,) int64 for class-conditional
    priors. draws: per level (missing: LevelDraw()). given: grids (n, h_i, w_i) of levels kept as they are
    (the top of another image, to draw only the bottom), or with -1 where codes are to be drawn."""
    draws, given = draws or {}, given or {}
    grids: list[torch.Tensor] = []
    log_probs: list[torch.Tensor] = []
    for level in model.level_names:
        kept = given.get(level)
        if kept is not None and bool((kept >= 0).all()):
            grids.append(kept)
            log_probs.append(torch.zeros(n))
            continue
        if level not in priors:
            raise ValueError(f"the {level} level has no learned prior to draw it from")
        prior, draw = priors[level], draws.get(level, LevelDraw())
        condition = condition_map(model, grids, level)
        drawn, log_p = prior.sample_scored(
            n, prior_labels(prior, labels), draw.temperature, draw.top_k, draw.seed, kept, condition
        )
        grids.append(drawn)
        log_probs.append(log_p)
    return AncestralSample(grids, log_probs)


def prior_labels(prior: GatedPixelCNN, labels: torch.Tensor | None) -> torch.Tensor | None:
    """The labels a prior takes: the ones given when it is class-conditional, else none."""
    return labels if prior.config.num_classes else None


@torch.inference_mode()
def level_log_probs(
    model: VQVAE2, priors: dict[str, GatedPixelCNN], grids: list[torch.Tensor], labels: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """log p(z_level | levels above, label) in nats, (B,), of each level with a prior, for grids top first."""
    result = {}
    for i, level in enumerate(model.level_names):
        if level in priors:
            prior = priors[level]
            condition = condition_map(model, grids[:i], level)
            result[level] = prior.log_prob(grids[i], prior_labels(prior, labels), condition)
    return result
