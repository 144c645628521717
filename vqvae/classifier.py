"""A small CNN classifier kept beside a checkpoint, to score what the priors generate.

Decoded samples from a class-conditional prior should look like their class: the
fraction a classifier trained on the real training split assigns to the asked
label measures that (a sample score in the spirit of the Inception score).
It trains with the project's one training loop (train.py, `train_classifier`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import checkpoint as ckpt
from .files import CLASSIFIER


class Classifier(nn.Module):
    """Two conv blocks and two linear layers: x (B, C, S, S) in [0, 1] -> logits (B, classes)."""

    def __init__(self, in_channels: int, image_size: int, num_classes: int):
        super().__init__()
        self.shape = (in_channels, image_size, num_classes)
        side = image_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, S/2, S/2)
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, S/4, S/4)
            nn.Flatten(),
            nn.Linear(64 * side * side, 128),
            nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def load_classifier(folder: Path) -> Classifier | None:
    """The classifier saved beside a checkpoint, or None when there is none."""
    folder = Path(folder)
    settings = ckpt.read_config(folder).get("classifier")
    if settings is None or not (folder / CLASSIFIER).exists():
        return None
    model = Classifier(settings["in_channels"], settings["image_size"], settings["num_classes"])
    tensors, _ = ckpt.read_tensors(folder / CLASSIFIER)
    ckpt.check_state_dict(model, tensors, folder / CLASSIFIER)
    model.load_state_dict(tensors)
    return model.eval()


@dataclass
class Scores:
    accuracy: float  # fraction classified as the given label
    confidence: float  # mean probability the classifier gives its own top class


@torch.inference_mode()
def score(model: Classifier, images: torch.Tensor, labels: torch.Tensor) -> Scores:
    probs = model.eval()(images).softmax(dim=1)  # (B, classes)
    top = probs.max(dim=1)
    return Scores(float((top.indices == labels).float().mean()), float(top.values.mean()))
