"""`python -m vqvae sample` of a speech model: rows of codes drawn from a prior (the learned one asked
for a word), decoded in the training speakers' voices in turn."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import checkpoint as ckpt
from ..checkpoint import Checkpoint
from ..comparison import prior_named
from ..placement import weights_device
from ..sampling import asked_labels
from .codes import decode_all
from .synth import SAMPLE_RATE

GAP = SAMPLE_RATE // 5  # 0.2 s of silence between samples in one file


@dataclass
class SpokenSamples:
    waves: torch.Tensor  # (n, CLIP)
    indices: torch.Tensor  # (n, 1, t)
    said: list[str]  # "seven (f2-en-gb)": the word asked for, if any, and the voice

    def joined(self) -> torch.Tensor:
        """Every sample one after another, GAP samples of silence between them: (n * (CLIP + GAP),)."""
        gaps = torch.zeros(len(self.waves), GAP)
        return torch.cat([self.waves, gaps], dim=1).reshape(-1)


@torch.inference_mode()
def sample_utterances(
    loaded: Checkpoint, prior: str, n: int, label: int | None, temperature: float, seed: int
) -> SpokenSamples:
    model = loaded.model
    fingerprint = ckpt.model_fingerprint(model)
    codes = ckpt.load_codes(loaded.path, loaded.config, fingerprint=fingerprint) if prior == "unigram" else None
    train = None if codes is None else codes.train
    chosen = prior_named(prior, loaded.path, loaded.config, fingerprint, train, weights_device(model))
    words = loaded.data.class_names
    labels = asked_labels(chosen.config.num_classes if prior == "learned" else 0, n, label)
    drawn = chosen.sample(n, labels=labels, temperature=temperature, seed=seed)  # (n, 1, t)
    voices = torch.arange(n) % model.config.model.num_speakers
    names = loaded.data.speaker_names
    said = [f"{words[int(labels[i])] + ' ' if labels is not None else ''}({names[int(voices[i])]})" for i in range(n)]
    return SpokenSamples(decode_all(model, drawn, voices), drawn, said)
