"""Measures of a VQ-VAE: reconstruction error (MSE, PSNR, SSIM), code usage, and how well a prior
predicts code grids.

perplexity = exp(-sum_k p_k log p_k) of the code-usage distribution: K when all
codes are used evenly, 1 when the codebook has collapsed to a single code.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .prior import Prior


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the usage distribution given by counts (K,)."""
    p = counts.double() / counts.sum().clamp_min(1)
    entropy = -(p * torch.log(p.clamp_min(1e-30))).sum()
    return torch.exp(entropy).to(torch.float32)


def mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-image mean squared error: (B, C, H, W) x 2 -> (B,)."""
    return (x_hat - x).pow(2).flatten(1).mean(1)


def psnr_db(mean_squared_error: float) -> float:
    """Peak signal-to-noise ratio for images in [0, 1]: 10 log10(1 / MSE)."""
    return float("inf") if mean_squared_error <= 0 else 10.0 * math.log10(1.0 / mean_squared_error)


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    window = torch.outer(g, g)  # (size, size)
    return window.expand(channels, 1, size, size).contiguous()


def ssim(x_hat: torch.Tensor, x: torch.Tensor, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004), Gaussian window, per image: (B, C, H, W) -> (B,).

    The window shrinks to the image side for small images (an 8x8 digit gets a 7x7 window).
    """
    c = x.shape[1]
    size = min(window_size, x.shape[-1] - (1 - x.shape[-1] % 2), x.shape[-2] - (1 - x.shape[-2] % 2))
    window = _gaussian_window(size, sigma, c).to(x.dtype)
    c1, c2 = 0.01**2, 0.03**2  # constants for a dynamic range of 1

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, window, groups=c)

    mu_x, mu_y = blur(x_hat), blur(x)
    var_x = blur(x_hat * x_hat) - mu_x**2
    var_y = blur(x * x) - mu_y**2
    cov = blur(x_hat * x) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.flatten(1).mean(1)


@torch.inference_mode()
def bits_per_latent(prior: Prior, indices: torch.Tensor, labels: torch.Tensor | None) -> float:
    """Mean -log2 p(z) per latent over grids (N, h, w)."""
    h, w = indices.shape[1:]
    nats = torch.cat(
        [
            -prior.log_prob(indices[i : i + 500], None if labels is None else labels[i : i + 500])
            for i in range(0, len(indices), 500)
        ]
    )
    return float(nats.mean()) / (h * w * math.log(2))
