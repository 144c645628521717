"""Training the speech VQ-VAE: train.py's loop and its VQ-VAE task, on batches of utterances.

Equation 3 with the reconstruction term measured on the log spectrogram (features.py): the mean
squared error of log |STFT|, divided by its variance over the training utterances, so its scale
is the image models'. Each utterance of a batch is moved in time by up to SHIFT samples (zeros
fill in), by offsets drawn from (seed, step) alone, as the images are shifted.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from .. import distributed
from ..config import DataFacts, SpeechConfig, TrainConfig
from ..data import shift_offsets
from ..train import EpochSampler, VQVAETask
from .data import Utterances, load_speech_split
from .features import log_magnitude
from .model import SpeechVQVAE

SHIFT = 400  # samples: 25 ms each way


def shifted_waves(waves: torch.Tensor, shift: int, offsets: torch.Tensor) -> torch.Tensor:
    """Each wave (B, T) moved by its offset (B,) in [0, 2 shift] less `shift` samples, zeros filling in."""
    padded = torch.nn.functional.pad(waves, (shift, shift))  # (B, T + 2s)
    t = waves.shape[1]
    return torch.stack([padded[i, o : o + t] for i, o in enumerate(offsets.tolist())])


def spectrogram_variance(waves: torch.Tensor, batch_size: int = 256) -> float:
    """The variance of log |STFT| over utterances (N, T): the scale of the reconstruction term."""
    total, square, count = 0.0, 0.0, 0
    for start in range(0, len(waves), batch_size):
        s = log_magnitude(waves[start : start + batch_size]).double()
        total, square, count = total + float(s.sum()), square + float(s.pow(2).sum()), count + s.numel()
    mean = total / count
    return square / count - mean * mean


class SpeechTask(VQVAETask):
    """Batches of (waves, speakers) and the loss of equation 3 on their log spectrograms."""

    def __init__(
        self,
        model: SpeechVQVAE,
        train: Utterances,
        config: TrainConfig,
        data_variance: float,
        shard: distributed.Shard | None = None,
    ):
        self.model, self.data_variance, self.workers = model, data_variance, 0
        self.waves, self.speakers = train.waves, train.speakers
        self.sampler = EpochSampler(len(train), config.batch_size, config.seed, shard)
        self.seed = config.seed
        self.count_codes(model)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, part = self.sampler.rows(step), self.sampler.part
        offsets = shift_offsets(part.stop, SHIFT, self.seed, step)[part, 1]
        return shifted_waves(self.waves[rows], SHIFT, offsets), self.speakers[rows]

    def reconstruction(self, network: torch.nn.Module, batch: Any) -> tuple[Any, torch.Tensor]:
        waves, speakers = batch
        out = network(waves, speakers)
        return out, torch.nn.functional.mse_loss(out.spectrogram.float(), out.target)


class SpeechData:
    """The speech family's training utterances (train.py's ImageData for images)."""

    def __init__(self, train_config: TrainConfig):
        self.split = load_speech_split(train_config.data)

    def fitted(self, config: SpeechConfig) -> SpeechConfig:
        """One speaker embedding for each training speaker of the data."""
        model = dataclasses.replace(config.model, num_speakers=len(self.split.training_speakers))
        return dataclasses.replace(config, model=model)

    def variance(self) -> float:
        return spectrogram_variance(self.split.train.waves)

    def facts(self, data_variance: float) -> DataFacts:
        train = self.split.train
        return DataFacts(data_variance, list(train.word_names), len(train), list(self.split.training_speakers))

    def task(
        self, model: SpeechVQVAE, config: TrainConfig, data_variance: float, shard: distributed.Shard, workers: int
    ) -> SpeechTask:
        return SpeechTask(model, self.split.train, config, data_variance, shard)
