"""The plain VQ-VAE training step the benchmark compares against, written here on its own.

The same architecture as the `mnist` preset (section 4.1 of van den Oord et al. 2017:
two stride-2 4x4 convs, a 3x3 conv, two residual blocks, a 1x1 conv to D; the decoder
mirrors it), trained the way the paper's reference code does it, with none of our tricks:
the codebook starts uniform in [-1/K, 1/K] and learns from the loss of equation 3,
    L = ||x - D(z_q)||^2 / Var(x) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2,
the nearest code is picked from the full squared distances and looked up by a one-hot
matmul, float32, `torch.optim.Adam` at a constant rate, no augmentation, no compile.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import VQVAEConfig
from ..metrics import psnr_db


class PlainResidual(nn.Module):
    def __init__(self, channels: int, residual_channels: int):
        super().__init__()
        self.conv3 = nn.Conv2d(channels, residual_channels, 3, padding=1)
        self.conv1 = nn.Conv2d(residual_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv1(F.relu(self.conv3(F.relu(x))))


def _residuals(channels: int, residual_channels: int, blocks: int) -> list[nn.Module]:
    return [PlainResidual(channels, residual_channels) for _ in range(blocks)] + [nn.ReLU()]


class PlainVQVAE(nn.Module):
    """Encoder, codebook (an nn.Parameter, K x D) and decoder for a x4-downsampling config."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        m, q = config.model, config.quantizer
        if m.downsample != 4:
            raise ValueError("the plain baseline is written for downsample 4 (the mnist preset)")
        hidden, d, k = m.hidden_channels, q.embedding_dim, q.num_embeddings
        res = (hidden, m.residual_channels, m.num_residual_blocks)
        self.encoder = nn.Sequential(
            nn.Conv2d(m.in_channels, hidden // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden // 2, hidden, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            *_residuals(*res),
            nn.Conv2d(hidden, d, 1),
        )
        self.codebook = nn.Parameter(torch.empty(k, d).uniform_(-1.0 / k, 1.0 / k))  # e, (K, D)
        self.decoder = nn.Sequential(
            nn.Conv2d(d, hidden, 3, padding=1),
            *_residuals(*res),
            nn.ConvTranspose2d(hidden, hidden // 2, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(hidden // 2, m.in_channels, 4, stride=2, padding=1),
        )
        self.commitment_cost = q.commitment_cost

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z_e (B, D, h, w) -> (z_q (B, D, h, w) straight-through, codebook loss, commitment loss)."""
        b, d, h, w = z_e.shape
        z = z_e.permute(0, 2, 3, 1).reshape(-1, d)  # (B, D, h, w) -> (B*h*w, D)
        e = self.codebook
        distances = z.pow(2).sum(1, keepdim=True) - 2 * z @ e.t() + e.pow(2).sum(1)  # (B*h*w, K)
        one_hot = F.one_hot(distances.argmin(1), e.shape[0]).to(z.dtype)  # (B*h*w, K)
        e_k = one_hot @ e  # (B*h*w, K) @ (K, D) -> (B*h*w, D)
        codebook_loss = F.mse_loss(e_k, z.detach())
        commitment_loss = F.mse_loss(z, e_k.detach())
        z_q = z + (e_k - z).detach()
        return z_q.view(b, h, w, d).permute(0, 3, 1, 2), codebook_loss, commitment_loss

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) -> (x_hat (B, C, H, W), codebook + beta * commitment loss)."""
        z_q, codebook_loss, commitment_loss = self.quantize(self.encoder(x))
        return self.decoder(z_q), codebook_loss + self.commitment_cost * commitment_loss


@dataclass
class PlainTrainer:
    """One Adam step at a time on random batches of `images` (N, C, H, W)."""

    model: PlainVQVAE
    images: torch.Tensor
    batch_size: int
    learning_rate: float
    seed: int = 0

    def __post_init__(self) -> None:
        self.data_variance = float(self.images.var())
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.learning_rate)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.order, self.position = torch.empty(0, dtype=torch.int64), 0

    def _batch(self) -> torch.Tensor:
        if self.position + self.batch_size > len(self.order):  # a new epoch
            self.order, self.position = torch.randperm(len(self.images), generator=self.generator), 0
        rows = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return self.images[rows]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        x_hat, vq_loss = self.model(x)
        return F.mse_loss(x_hat, x) / self.data_variance + vq_loss

    def step(self) -> float:
        """One training step; returns its loss."""
        self.model.train()
        loss = self.loss(self._batch())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()


@torch.no_grad()
def plain_psnr(model: PlainVQVAE, images: torch.Tensor) -> float:
    """Held-out PSNR (dB) of the plain model's reconstructions of images (N, C, H, W) in [0, 1]."""
    model.eval()
    x_hat, _ = model(images)
    model.train()
    return psnr_db(float((x_hat.clamp(0, 1) - images).pow(2).mean()))
