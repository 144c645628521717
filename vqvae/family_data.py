"""The training data of each model family, and the task that trains on it: a VQ-VAE's images
(train.py's ImageData) or a speech model's utterances (speech/train.py's SpeechData)."""

from __future__ import annotations

from typing import Any

from .config import TrainConfig
from .families import ModelSettings, family_of
from .speech.train import SpeechData
from .train import ImageData


def training_data(config: ModelSettings, train_config: TrainConfig, stream: bool | None = None) -> Any:
    """What train_vqvae trains on for these settings, loaded and checked (stream: a folder of images read
    from its cache batch by batch; None, when it is too large to load)."""
    if family_of(config) == "speech":
        return SpeechData(train_config)
    return ImageData(config, train_config, None, stream)
