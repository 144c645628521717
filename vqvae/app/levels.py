"""What each level of a VQ-VAE-2 carries, for one held-out image (Razavi et al. 2019, section 3 and its
figure of bottom codes resampled under fixed top codes): the Levels page's questions, answered as arrays.

    both        decoded from every level's own codes: the reconstruction
    top alone   the top codes, every level below filled by its prior's most likely codes given the ones above
    swapped     this image's codes below the top, under another image's top codes
    resampled   the levels below drawn again by their priors, the top kept: the global structure stays,
                the details vary
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..ancestral import LevelDraw, level_log_probs, sample_levels
from ..hierarchy import VQVAE2
from ..images import to_uint8
from ..metrics import psnr_db
from ..prior import GatedPixelCNN


@dataclass
class LevelFigures:
    """One level of one image's codes."""

    level: str
    shape: tuple[int, int]
    codes_used: int  # distinct codes in the image's grid of this level
    bits_per_latent: float | None  # -log2 p per latent under the level's learned prior (given the true levels above)
    grid: np.ndarray  # (h, w) int64


@dataclass
class LevelsStudy:
    image: np.ndarray  # (H, W, C) uint8, the held-out image
    both: np.ndarray  # (H, W, C) uint8, decoded from every level
    top_alone: np.ndarray  # (H, W, C) uint8
    swapped: np.ndarray  # (H, W, C) uint8, this image's lower levels under the donor's top
    donor: np.ndarray  # (H, W, C) uint8, the image whose top codes `swapped` uses
    resampled: np.ndarray  # (n, H, W, C) uint8, the levels below drawn again under this image's top
    psnr_db: dict[str, float]  # of "both", "top alone" and each resampled one's mean, against the image
    levels: list[LevelFigures]  # top first


@torch.inference_mode()
def study_levels(
    model: VQVAE2,
    priors: dict[str, GatedPixelCNN],
    x: torch.Tensor,
    donor: torch.Tensor,
    label: torch.Tensor | None,
    resamples: int = 4,
    temperature: float = 1.0,
    seed: int = 0,
) -> LevelsStudy:
    """x and donor: (1, C, H, W) in [0, 1]; label: (1,) int64 for class-conditional priors. The priors of every
    level below the top are needed; the top's only for its bits."""
    grids = model.encode(x)
    donor_grids = model.encode(donor)
    top = model.level_names[0]
    below = model.level_names[1:]
    greedy = {level: LevelDraw(temperature=0.0) for level in below}
    alone = sample_levels(model, priors, 1, label, greedy, {top: grids[0]}).grids
    labels = None if label is None else label.expand(resamples)
    draws = {level: LevelDraw(temperature, seed + i) for i, level in enumerate(below)}
    again = sample_levels(model, priors, resamples, labels, draws, {top: grids[0].expand(resamples, -1, -1)}).grids
    both, alone_image = model.decode_indices(grids).clamp(0, 1), model.decode_indices(alone).clamp(0, 1)
    resampled = model.decode_indices(again).clamp(0, 1)
    bits = level_log_probs(model, priors, grids, label)
    figures = []
    for level, grid in zip(model.level_names, grids):
        h, w = grid.shape[1:]
        log_p = bits.get(level)
        figures.append(
            LevelFigures(
                level,
                (h, w),
                int(grid.unique().numel()),
                None if log_p is None else float(-log_p[0] / (h * w * math.log(2))),
                grid[0].numpy().copy(),
            )
        )
    return LevelsStudy(
        image=to_uint8(x)[0],
        both=to_uint8(both)[0],
        top_alone=to_uint8(alone_image)[0],
        swapped=to_uint8(model.decode_indices([donor_grids[0], *grids[1:]]))[0],
        donor=to_uint8(donor)[0],
        resampled=to_uint8(resampled),
        psnr_db={
            "both": _psnr(both, x),
            "top alone": _psnr(alone_image, x),
            "resampled": _psnr(resampled, x.expand_as(resampled)),
        },
        levels=figures,
    )


def _psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    return psnr_db(float((x_hat - x).pow(2).mean()))
