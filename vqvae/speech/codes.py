"""The codes of utterances, a batch at a time: for the evaluation, and once for the prior to learn from
(the training utterances' rows of codes with their words, and the held-out ones')."""

from __future__ import annotations

import torch

from ..checkpoint import Codes
from .data import SpeechSplit
from .model import SpeechVQVAE

BATCH = 128


@torch.inference_mode()
def encode_all(model: SpeechVQVAE, waves: torch.Tensor) -> torch.Tensor:
    """(N, CLIP) -> (N, 1, t) indices."""
    model.eval()
    return torch.cat([model.encode(waves[i : i + BATCH]) for i in range(0, len(waves), BATCH)])


@torch.inference_mode()
def decode_all(model: SpeechVQVAE, indices: torch.Tensor, speakers: torch.Tensor) -> torch.Tensor:
    """(N, 1, t) indices in the voices (N,) -> (N, CLIP) waves."""
    rows = [slice(i, i + BATCH) for i in range(0, len(indices), BATCH)]
    return torch.cat([model.decode_indices(indices[r], speakers[r]) for r in rows])


def extract_speech_codes(model: SpeechVQVAE, split: SpeechSplit) -> Codes:
    """The rows of codes (N, 1, t) of the train and held-out utterances, labelled by their words."""
    train, test = split.train, split.test
    return Codes(encode_all(model, train.waves), train.words, encode_all(model, test.waves), test.words)
