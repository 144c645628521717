"""Causal self-attention over a code grid in raster order, for the gated PixelCNN (network.py).

VQ-VAE-2's top prior is a PixelCNN with self-attention layers (Razavi et al. 2019, section 3.3, after
PixelSNAIL, Chen et al. 2018): convolutions see a neighbourhood, attention every earlier position at once.
Here one block sits on the sum of the stacks' skip connections, just before the output head. The features
at position s depend only on codes before s, so position t may attend to every s <= t, itself included,
and the prior stays causal.

    y_t = x_t + W_o softmax(q_t K_<=t^T / sqrt(d)) V_<=t,   q, k, v = W_qkv (x + p)   (p: learned per position)

`forward` attends over whole grids (training and scoring.py); `step` over one new position given the keys
and values of the ones before it (sampler.py). Both use the same layers.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CausalSelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int, positions: int):
        super().__init__()
        self.heads, self.head_dim = heads, channels // heads
        self.position = nn.Parameter(torch.randn(positions, channels) * 0.02)  # p, one row per grid position
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        nn.init.zeros_(self.out.weight)  # the block starts as the identity: the stacks' features pass unchanged
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), positions in raster order -> (B, T, C)."""
        b, t, c = x.shape
        q, k, v = self._split(self.qkv(x + self.position[:t]))  # each (B, H, T, d)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # position t sees s <= t
        return x + self.out(y.transpose(1, 2).reshape(b, t, c))  # (B, H, T, d) -> (B, T, C)

    def over_grid(self, x: torch.Tensor) -> torch.Tensor:
        """The same on channels-first features: (B, C, h, w) -> (B, C, h, w)."""
        b, c, h, w = x.shape
        y = self(x.flatten(2).transpose(1, 2))  # (B, C, h, w) -> (B, h*w, C)
        return y.transpose(1, 2).reshape(b, c, h, w)

    def new_cache(self, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Room for the keys and values of every position of n grids: two (n, H, T, d)."""
        shape = (n, self.heads, self.position.shape[0], self.head_dim)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def step(self, x: torch.Tensor, t: int, cache: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """x (n, C) at position t -> (n, C); keeps its key and value in the cache for the positions after it."""
        n, c = x.shape
        q, k, v = self._split(self.qkv(x + self.position[t])[:, None])  # each (n, H, 1, d)
        keys, values = cache
        keys[:, :, t : t + 1], values[:, :, t : t + 1] = k, v
        weights = (q @ keys[:, :, : t + 1].transpose(2, 3) / math.sqrt(self.head_dim)).softmax(dim=-1)  # (n, H, 1, t+1)
        y = weights @ values[:, :, : t + 1]  # (n, H, 1, d)
        return x + self.out(y.reshape(n, c))

    def _split(self, qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, 3C) -> q, k, v, each (B, H, T, d)."""
        b, t, _ = qkv.shape
        return tuple(part.view(b, t, self.heads, self.head_dim).transpose(1, 2) for part in qkv.chunk(3, dim=-1))
