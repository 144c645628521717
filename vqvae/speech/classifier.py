"""The judges of what the speech codes keep: a word classifier and a speaker classifier, each trained on
real training audio (never on reconstructions), kept beside the checkpoint.

A small 1-D CNN over log |STFT| (three convolutions, then the mean and the maximum over time, so where
the word sits in the clip does not matter). Reconstructed and converted utterances are then judged by
what a listener trained on real speech hears in them: the word (is the content kept?) and the voice
(is it the speaker the decoder was asked for?). They train with the project's one loop (train.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .. import checkpoint as ckpt
from .. import distributed
from ..config import TrainConfig, classifier_training
from ..runtime import Runtime
from ..train import EpochSampler, Task, train_loop
from .data import Utterances
from .features import BINS, log_magnitude
from .model import CENTRE, SPREAD
from .train import SHIFT, shifted_waves

JUDGES = {"word": "word_classifier", "speaker": "speaker_classifier"}  # file stems, config.json sections
JUDGE_STEPS = 800


class SpeechClassifier(nn.Module):
    """waves (B, CLIP) -> logits (B, num_classes)."""

    def __init__(self, num_classes: int, channels: int = 128):
        super().__init__()
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv1d(BINS if i == 0 else channels, channels, 5, padding=2), nn.ReLU()]
            if i < 2:
                layers.append(nn.MaxPool1d(2))
        self.net = nn.Sequential(*layers)
        self.head = nn.Linear(2 * channels, num_classes)

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        h = self.net((log_magnitude(waves) - CENTRE) / SPREAD)  # (B, C, FRAMES / 4)
        return self.head(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))


class JudgeTask(Task):
    """Shifted training utterances and their labels (words or speakers), and the cross-entropy."""

    def __init__(self, model: SpeechClassifier, waves: torch.Tensor, labels: torch.Tensor, config: TrainConfig,
                 stem: str, shard: distributed.Shard | None = None):  # fmt: skip
        self.model, self.waves, self.labels, self.seed = model, waves, labels, config.seed
        self.sampler = EpochSampler(len(waves), config.batch_size, config.seed, shard)
        self.weights_file, self.state_file = f"{stem}.safetensors", f"{stem}_train_state.safetensors"
        self.history_file = f"{stem}_history.json"

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows, part = self.sampler.rows(step), self.sampler.part
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 104_729)
        offsets = torch.randint(0, 2 * SHIFT + 1, (part.stop,), generator=generator)[part]
        return shifted_waves(self.waves[rows], SHIFT, offsets), self.labels[rows]

    def loss(self, network: nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
        waves, labels = batch
        loss = nn.functional.cross_entropy(network(waves).float(), labels)
        return loss, {"loss": loss.item()}

    def save_weights(self, folder: Path, step: int, elapsed_s: float) -> None:
        ckpt.write_tensors(folder / self.weights_file, self.model.state_dict(), {"step": str(step)})


def train_judge(
    folder: Path,
    kind: str,
    train: Utterances,
    steps: int = JUDGE_STEPS,
    should_stop: Callable[[], bool] | None = None,
    runtime: Runtime | None = None,
) -> SpeechClassifier:
    """Train the word or speaker classifier on the training utterances and name it in config.json (only
    when it ran its whole length, so a stopped one is trained again)."""
    labels = train.words if kind == "word" else train.speakers
    classes = len(train.word_names) if kind == "word" else len(train.speaker_names)
    config = classifier_training(steps, 0)
    torch.manual_seed(0)
    model = SpeechClassifier(classes)
    runtime = runtime or Runtime()
    task = JudgeTask(model, train.waves, labels, config, JUDGES[kind], runtime.shard)
    result = train_loop(task, config, Path(folder), should_stop=should_stop, runtime=runtime)
    if result.step >= steps and runtime.shard.main:
        ckpt.update_config(folder, **{JUDGES[kind]: {"num_classes": classes}})
    return model.cpu().eval()


def load_judge(folder: Path, kind: str) -> SpeechClassifier | None:
    """The word or speaker classifier kept beside a checkpoint, or None when there is none."""
    stem = JUDGES[kind]
    settings = ckpt.read_config(folder).get(stem)
    path = Path(folder) / f"{stem}.safetensors"
    if settings is None or not path.exists():
        return None
    model = SpeechClassifier(int(settings["num_classes"]))
    tensors, _ = ckpt.read_tensors(path)
    ckpt.check_state_dict(model, tensors, path)
    model.load_state_dict(tensors)
    return model.eval()


@dataclass
class Judged:
    accuracy: float  # fraction named as the given label
    predictions: torch.Tensor  # (N,) int64


@torch.inference_mode()
def judge(model: SpeechClassifier, waves: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> Judged:
    model.eval()
    predicted = torch.cat([model(waves[i : i + batch_size]).argmax(dim=1) for i in range(0, len(waves), batch_size)])
    return Judged(float((predicted == labels).float().mean()), predicted)
