"""A small CNN classifier kept beside a checkpoint, to score what the priors generate.

Decoded samples from a class-conditional prior should look like their class: the
fraction a classifier trained on the real training split assigns to the asked
label measures that (a sample score in the spirit of the Inception score).
It trains with the project's one training loop, through its own task.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import checkpoint as ckpt
from .config import TrainConfig
from .data import Split, random_shift
from .train import EpochSampler, Task, train_loop

WEIGHTS = "classifier.safetensors"
STATE = "classifier_train_state.safetensors"
HISTORY = "classifier_history.json"


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


class ClassifierTask(Task):
    weights_file = WEIGHTS
    state_file = STATE
    history_file = HISTORY

    def __init__(self, model: Classifier, split: Split, config: TrainConfig):
        self.model, self.images, self.labels = model, split.train.images, split.train.labels
        self.sampler = EpochSampler(len(self.images), config.batch_size, config.seed)
        self.seed = config.seed

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.sampler.rows(step)
        return random_shift(self.images[rows], 2, self.seed, step), self.labels[rows]

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        return loss, {"loss": loss.item()}

    def save_weights(self, folder: Path, step: int, elapsed_s: float) -> None:
        ckpt.write_tensors(folder / self.weights_file, self.model.state_dict(), {"step": str(step)})


def train_classifier(folder: Path, split: Split, steps: int = 1500, seed: int = 0) -> Classifier:
    """Train on the train split (labels required) and save beside the checkpoint."""
    c, size = split.train.images.shape[1], split.train.images.shape[-1]
    model = Classifier(c, size, len(split.train.class_names))
    config = TrainConfig(data="", steps=steps, batch_size=128, learning_rate=1e-3, seed=seed, save_every=steps)
    torch.manual_seed(seed)
    train_loop(ClassifierTask(model, split, config), config, Path(folder))
    ckpt.update_config(folder, classifier={"in_channels": c, "image_size": size, "num_classes": model.shape[2]})
    return model.eval()


def load_classifier(folder: Path) -> Classifier | None:
    """The classifier saved beside a checkpoint, or None when there is none."""
    folder = Path(folder)
    settings = ckpt.read_config(folder).get("classifier")
    if settings is None or not (folder / WEIGHTS).exists():
        return None
    model = Classifier(settings["in_channels"], settings["image_size"], settings["num_classes"])
    tensors, _ = ckpt.read_tensors(folder / WEIGHTS)
    ckpt.check_state_dict(model, tensors, folder / WEIGHTS)
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
