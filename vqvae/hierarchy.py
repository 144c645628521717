"""VQ-VAE-2 (Razavi, van den Oord and Vinyals 2019, section 3.1 and Algorithm 1): a hierarchy of code grids.

The bottom encoder brings the image to the bottom grid, as the one-level encoder does (model.py),
and each level above halves the grid again: h_bottom = E_bottom(x), h_top = E_top(h_bottom).
Quantisation runs top-down. The top level is quantised from its own features; every level below
from its own features together with what the levels above it say at its size, so its codes carry
what those left out (Algorithm 1):

    e_top = Q_top(h_top)
    a_bottom = D_top(e_top)                        the top's codes decoded to the bottom grid
    e_bottom = Q_bottom(h_bottom, a_bottom)
    x_hat = D(e_bottom, a_bottom)

With more levels each a_i = D_(i-1)(e_(i-1), a_(i-1)) gathers every level above i. The decoder reads
the bottom codes beside a_bottom, the top codes brought up to the bottom grid, as the paper's decoder
reads the bottom codes beside the upsampled top codes.

Levels are indexed top first, the order codes are drawn in (section 3.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig, VQVAE2Config
from .model import Decoder, Encoder, ResidualBlock
from .numerics import settle_vector_maths
from .placement import on_weights
from .quantizer import QuantizerOutput, make_quantizer


def _residual_stack(config: ModelConfig, channels: int) -> list[nn.Module]:
    blocks = [ResidualBlock(channels, config.residual_channels) for _ in range(config.num_residual_blocks)]
    return [*blocks, nn.ReLU()]


class Halving(nn.Module):
    """E_i of a level above the bottom: the features of the level below at half the side.
    (B, C, 2h, 2w) -> (B, C, h, w)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config.hidden_channels
        self.net = nn.Sequential(
            nn.Conv2d(c, c, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            *_residual_stack(config, c),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class Doubling(nn.Module):
    """D_i of a level above the bottom: its codes (and what the levels above it said) at twice the side,
    for the level below. (B, C_in, h, w) -> (B, D, 2h, 2w)."""

    def __init__(self, config: ModelConfig, in_channels: int, embedding_dim: int):
        super().__init__()
        c = config.hidden_channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1),
            *_residual_stack(config, c),
            nn.ConvTranspose2d(c, embedding_dim, 4, stride=2, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass
class VQVAE2Output:
    x_hat: torch.Tensor  # (B, C, H, W)
    levels: list[QuantizerOutput]  # top first, each level's z_q (B, D, h_i, w_i), indices, losses


class VQVAE2(nn.Module):
    """Levels top first; `indices` and grids are lists of (B, h_i, w_i) int64, one per level."""

    def __init__(self, config: VQVAE2Config):
        super().__init__()
        settle_vector_maths()
        self.config = config
        model, d, n = config.model, config.quantizer.embedding_dim, config.levels
        c = model.hidden_channels
        self.encoder = Encoder(model, c)  # x -> h_bottom
        self.halvings = nn.ModuleList(Halving(model) for _ in range(n - 1))  # [i]: h_(i+1) -> h_i
        # z_e of each level from its features, beside a_i below the top
        self.to_codes = nn.ModuleList(nn.Conv2d(c + (d if i else 0), d, 1) for i in range(n))
        self.quantizers = nn.ModuleList(make_quantizer(config.quantizer) for _ in range(n))
        # [i]: level i's codes (and a_i) -> a_(i+1), at the side of level i+1
        self.doublings = nn.ModuleList(Doubling(model, d * (2 if i else 1), d) for i in range(n - 1))
        self.decoder = Decoder(model, 2 * d)  # the bottom's codes beside a_bottom

    @property
    def level_names(self) -> tuple[str, ...]:
        return self.config.level_names

    @property
    def num_embeddings(self) -> int:
        return self.config.quantizer.num_embeddings

    @property
    def latent_shapes(self) -> dict[str, tuple[int, int]]:
        return self.config.latent_shapes

    def forward(self, x: torch.Tensor) -> VQVAE2Output:
        """x: (B, C, H, W) float in [0, 1]."""
        levels: list[QuantizerOutput] = []
        above = None  # a_i: (B, D, h_i, w_i)
        for i, h in enumerate(self._features(x)):
            if i:
                above = self._above(i, levels[-1].z_q, above)
            levels.append(self.quantizers[i](self._z_e(i, h, above)))
        return VQVAE2Output(self.decoder(torch.cat([levels[-1].z_q, above], dim=1)), levels)

    @on_weights
    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, C, H, W) float in [0, 1] -> indices of each level, top first. Never changes a codebook."""
        return self.encode_levels(x)[1]

    @on_weights
    def encode_levels(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """x: (B, C, H, W) -> each level's z_e (B, D, h_i, w_i) and indices (B, h_i, w_i), top first."""
        z_es: list[torch.Tensor] = []
        grids: list[torch.Tensor] = []
        above = None
        for i, h in enumerate(self._features(x)):
            if i:
                above = self._above(i, self.quantizers[i - 1].embed(grids[-1]), above)
            z_es.append(self._z_e(i, h, above))
            grids.append(self.quantizers[i].indices(z_es[-1]))
        return z_es, grids

    @on_weights
    def decode_indices(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """Each level's indices (B, h_i, w_i) int64 in [0, K), top first -> x_hat (B, C, H, W)."""
        self.check_grids(grids)
        above = None
        for i in range(1, len(grids)):
            above = self._above(i, self.quantizers[i - 1].embed(grids[i - 1]), above)
        return self.decoder(torch.cat([self.quantizers[-1].embed(grids[-1]), above], dim=1))

    def check_grids(self, grids: list[torch.Tensor]) -> None:
        """A ValueError naming the level whose grid is not (B, h_i, w_i) int64 codes in [0, K)."""
        if len(grids) != self.config.levels:
            raise ValueError(f"give one grid per level ({', '.join(self.level_names)}), not {len(grids)}")
        batch = grids[0].shape[0] if grids[0].dim() else None
        k = self.num_embeddings
        for (name, shape), grid in zip(self.latent_shapes.items(), grids):
            if grid.dtype != torch.int64 or grid.dim() != 3 or (batch, *shape) != tuple(grid.shape):
                raise ValueError(
                    f"the {name} level's grid must be int64 of shape ({batch}, {shape[0]}, {shape[1]}), "
                    f"got {grid.dtype} {tuple(grid.shape)}"
                )
            if grid.numel() and (int(grid.min()) < 0 or int(grid.max()) >= k):
                raise ValueError(f"the {name} level's codes must lie in [0, {k})")

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """h_i of every level, top first: the bottom's from the image, each one above from the one below."""
        features = [self.encoder(x)]  # (B, C, h_bottom, w_bottom)
        for halving in reversed(self.halvings):
            features.insert(0, halving(features[0]))
        return features

    def _z_e(self, i: int, h: torch.Tensor, above: torch.Tensor | None) -> torch.Tensor:
        """Level i's encoder output from its features (B, C, h, w) and a_i (B, D, h, w): (B, D, h, w)."""
        return self.to_codes[i](h if above is None else torch.cat([h, above], dim=1))

    def _above(self, i: int, z_q: torch.Tensor, above: torch.Tensor | None) -> torch.Tensor:
        """a_i from level i-1's codes z_q (B, D, h, w) and its own a_(i-1): (B, D, 2h, 2w)."""
        return self.doublings[i - 1](z_q if above is None else torch.cat([z_q, above], dim=1))
