"""Encoder, decoder and the VQ-VAE (van den Oord et al. 2017, sections 3 and 4.1).

The encoder halves the image side with each stride-2 4x4 conv (x2, x4 or x8 in
all), then a 3x3 conv, residual blocks (ReLU, 3x3 conv, ReLU, 1x1 conv) and a
1x1 conv to D channels: z_e is a (h, w) grid of D-dim vectors. The decoder
mirrors it with stride-2 4x4 transposed convs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import ModelConfig, VQVAEConfig
from .numerics import settle_vector_maths
from .placement import on_weights
from .quantizer import QuantizerOutput, make_quantizer


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, residual_channels: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(channels, residual_channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(residual_channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _residual_stack(config: ModelConfig) -> list[nn.Module]:
    blocks = [
        ResidualBlock(config.hidden_channels, config.residual_channels) for _ in range(config.num_residual_blocks)
    ]
    return [*blocks, nn.ReLU()]


def _num_halvings(config: ModelConfig) -> int:
    return int(math.log2(config.downsample))


class Encoder(nn.Module):
    """x (B, C, H, W) -> z_e (B, D, H/f, W/f) for downsampling f."""

    def __init__(self, config: ModelConfig, embedding_dim: int):
        super().__init__()
        hidden, n = config.hidden_channels, _num_halvings(config)
        widths = [config.in_channels] + [hidden // 2] * (n - 1) + [hidden]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(hidden, hidden, 3, padding=1))
        layers += _residual_stack(config)
        layers.append(nn.Conv2d(hidden, embedding_dim, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """z_q (B, D, h, w) -> x_hat (B, C, h*f, w*f); unbounded, near [0, 1] once trained."""

    def __init__(self, config: ModelConfig, embedding_dim: int):
        super().__init__()
        hidden, n = config.hidden_channels, _num_halvings(config)
        layers: list[nn.Module] = [nn.Conv2d(embedding_dim, hidden, 3, padding=1)]
        layers += _residual_stack(config)
        widths = [hidden] + [hidden // 2] * (n - 1) + [config.in_channels]
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
            if i < n - 1:
                layers.append(nn.ReLU())
        self.net = nn.Sequential(*layers)

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        return self.net(z_q)


@dataclass
class VQVAEOutput:
    x_hat: torch.Tensor  # (B, C, H, W)
    vq: QuantizerOutput

    @property
    def levels(self) -> list[QuantizerOutput]:
        """The one grid of codes, as VQ-VAE-2's output lists its levels (hierarchy.py)."""
        return [self.vq]


class Autoencoder(nn.Module):
    """An encoder, the quantiser and a decoder, built from settings of `model` and `quantizer` sections;
    a family names its own encoder and decoder (an image's here, speech/model.py's for sound)."""

    encoder_type: type[nn.Module]
    decoder_type: type[nn.Module]

    def __init__(self, config: Any):
        super().__init__()
        settle_vector_maths()
        self.config = config
        d = config.quantizer.embedding_dim
        self.encoder = self.encoder_type(config.model, d)
        self.quantizer = make_quantizer(config.quantizer)
        self.decoder = self.decoder_type(config.model, d)

    @property
    def num_embeddings(self) -> int:
        return self.config.quantizer.num_embeddings

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.config.latent_shape


class VQVAE(Autoencoder):
    encoder_type, decoder_type = Encoder, Decoder
    config: VQVAEConfig

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """x: (B, C, H, W) float in [0, 1]."""
        vq = self.quantizer(self.encoder(x))
        return VQVAEOutput(x_hat=self.decoder(vq.z_q), vq=vq)

    @on_weights
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, H, W) float in [0, 1] -> indices (B, h, w) int64. Never changes the codebook."""
        return self.quantizer.indices(self.encoder(x))

    @on_weights
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> x_hat (B, C, H, W)."""
        return self.decoder(self.quantizer.embed(indices))
