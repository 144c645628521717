"""The speech VQ-VAE (van den Oord et al. 2017, section 4.3): what is said, in codes; who says it, in the
decoder.

    wave (B, CLIP) -> log |STFT| (B, 257, 128) -> encoder: strided 1-D convolutions over time
    -> z_e (B, D, 1, t) -> the image models' quantiser (EMA codebook, k-means start, restarts)
    -> z_q -> decoder: 1-D convolutions, each residual block told the speaker's embedding,
    transposed convolutions back to 128 frames -> log |STFT| -> Griffin-Lim -> wave.

The codes are a grid of one row, (1, t), so the quantiser, the priors and the app's code pages read
them as they read an image's. The paper's decoder is a WaveNet given the speaker; on two CPU cores
this one predicts the log spectrogram instead, and fast Griffin-Lim turns it into sound
(docs/speech.md says what that costs). As in the paper, nothing but the bottleneck keeps the
speaker out of the codes: the decoder is told who speaks, so the codes need not carry it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..config import SpeechConfig, SpeechModelConfig
from ..model import Autoencoder
from ..placement import on_weights
from ..quantizer import QuantizerOutput
from .features import BINS, griffin_lim, log_magnitude

CENTRE, SPREAD = -5.0, 3.0  # log |X| of speech at LOUDNESS: silence at log FLOOR = -9.2, peaks near +3


class ResidualBlock1d(nn.Module):
    """x + conv1(relu(conv3(relu(x) + speaker))) (the image blocks of section 4.1, in 1-D)."""

    def __init__(self, channels: int, residual_channels: int, speaker_dim: int = 0):
        super().__init__()
        self.conv3 = nn.Conv1d(channels, residual_channels, 3, padding=1)
        self.conv1 = nn.Conv1d(residual_channels, channels, 1)
        self.speaker = nn.Linear(speaker_dim, channels) if speaker_dim else None

    def forward(self, x: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        h = torch.relu(x)
        if self.speaker is not None:
            h = h + self.speaker(speaker)[:, :, None]  # (B, E) -> (B, C, 1): the same at every time
        return x + self.conv1(torch.relu(self.conv3(h)))


def _halvings(config: SpeechModelConfig) -> int:
    return int(math.log2(config.downsample))


class SpeechEncoder(nn.Module):
    def __init__(self, config: SpeechModelConfig, embedding_dim: int):
        super().__init__()
        c = config.hidden_channels
        layers: list[nn.Module] = [nn.Conv1d(BINS, c, 3, padding=1)]
        for _ in range(_halvings(config)):
            layers += [nn.ReLU(), nn.Conv1d(c, c, 4, stride=2, padding=1)]
        self.stem = nn.Sequential(*layers)
        self.blocks = nn.ModuleList(
            ResidualBlock1d(c, config.residual_channels) for _ in range(config.num_residual_blocks)
        )
        self.out = nn.Conv1d(c, embedding_dim, 1)

    def forward(self, spectrogram: torch.Tensor) -> torch.Tensor:
        """(B, BINS, FRAMES) log |STFT| -> z_e (B, D, 1, t)."""
        h = self.stem((spectrogram - CENTRE) / SPREAD)
        for block in self.blocks:
            h = block(h)
        return self.out(torch.relu(h)).unsqueeze(2)  # (B, D, t) -> (B, D, 1, t)


class SpeechDecoder(nn.Module):
    def __init__(self, config: SpeechModelConfig, embedding_dim: int):
        super().__init__()
        c, e = config.hidden_channels, config.speaker_dim
        self.speakers = nn.Embedding(config.num_speakers, e)
        self.inp = nn.Conv1d(embedding_dim, c, 3, padding=1)
        self.blocks = nn.ModuleList(
            ResidualBlock1d(c, config.residual_channels, e) for _ in range(config.num_residual_blocks)
        )
        self.up = nn.ModuleList(nn.ConvTranspose1d(c, c, 4, stride=2, padding=1) for _ in range(_halvings(config)))
        self.up_speaker = nn.ModuleList(nn.Linear(e, c) for _ in self.up)
        self.out = nn.Conv1d(c, BINS, 3, padding=1)

    def forward(self, z_q: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """z_q (B, D, 1, t), speakers (B,) int64 -> (B, BINS, FRAMES) log |STFT|."""
        voice = self.speakers(speakers)  # (B, E)
        h = self.inp(z_q.squeeze(2))
        for block in self.blocks:
            h = block(h, voice)
        for up, told in zip(self.up, self.up_speaker):
            h = up(torch.relu(h + told(voice)[:, :, None]))
        return self.out(torch.relu(h)) * SPREAD + CENTRE


@dataclass
class SpeechOutput:
    spectrogram: torch.Tensor  # (B, BINS, FRAMES) the decoder's log |STFT|
    target: torch.Tensor  # (B, BINS, FRAMES) the input's
    vq: QuantizerOutput

    @property
    def levels(self) -> list[QuantizerOutput]:
        return [self.vq]


class SpeechVQVAE(Autoencoder):
    encoder_type, decoder_type = SpeechEncoder, SpeechDecoder
    config: SpeechConfig

    def forward(self, waves: torch.Tensor, speakers: torch.Tensor) -> SpeechOutput:
        """waves (B, CLIP) float in [-1, 1], speakers (B,) int64."""
        target = log_magnitude(waves)
        vq = self.quantizer(self.encoder(target))
        return SpeechOutput(self.decoder(vq.z_q, speakers), target, vq)

    @on_weights
    def encode(self, waves: torch.Tensor) -> torch.Tensor:
        """waves (B, CLIP) -> indices (B, 1, t) int64. Never changes the codebook."""
        return self.quantizer.indices(self.encoder(log_magnitude(waves)))

    @on_weights
    def decode_spectrogram(self, indices: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """indices (B, 1, t) int64, speakers (B,) -> (B, BINS, FRAMES) log |STFT| in that voice."""
        return self.decoder(self.quantizer.embed(indices), speakers)

    def decode_indices(self, indices: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
        """indices (B, 1, t), speakers (B,) -> waves (B, CLIP) in that voice (through Griffin-Lim)."""
        return griffin_lim(self.decode_spectrogram(indices, speakers))
