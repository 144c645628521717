"""Training measured side by side: ours (the real loop in vqvae/train.py) and the plain baseline.

- throughput: images per second at a fixed batch size, after a few warm-up steps;
- time to quality: training seconds from a fresh start until the held-out PSNR reaches a
  target, evaluated every few steps (the evaluation's own time is not counted, on either side);
- FLOPs of one training step (forward and backward, counted by torch's FlopCounterMode),
  which against the step time gives the achieved GFLOP/s.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..config import Preset
from ..data import Split, pixel_variance
from ..families import build_model
from ..metrics import psnr_db
from ..model import VQVAE
from ..runtime import Runtime
from ..train import TrainEvent, VQVAETask, train_loop
from .baseline import PlainTrainer, PlainVQVAE, plain_psnr


@dataclass
class Throughput:
    images_per_s: float
    step_s: float  # mean seconds per step
    steps: int


@dataclass
class TimeToQuality:
    reached: bool
    train_s: float | None  # training seconds until the target was first seen; None if never
    steps: int | None
    best_psnr_db: float
    cap_s: float  # training time after which it gave up


def ours_task(preset: Preset, split: Split, batch_size: int, **train_changes) -> tuple[VQVAETask, object]:
    """Our model and task, built as train_vqvae builds them, with the preset's settings at this batch size."""
    train_config = dataclasses.replace(preset.train, batch_size=batch_size, **train_changes)
    torch.manual_seed(train_config.seed)
    images = split.train.images
    task = VQVAETask(build_model(preset.vqvae), images, train_config, pixel_variance(images))
    return task, train_config


def _mean_step(ticks: list[float]) -> float:
    """Seconds per step from the start time of each step and of the one after the last."""
    return (ticks[-1] - ticks[0]) / (len(ticks) - 1)


def ours_throughput(
    preset: Preset, split: Split, batch_size: int, warmup: int, steps: int, runtime: Runtime | None = None
) -> Throughput:
    """Steps of our training loop (vqvae.train.train_loop, VQVAETask), timed between its stop checks (on a
    GPU, once its queued work is done), on `runtime`'s device and precision (the CPU in fp32 by default)."""
    runtime = runtime or Runtime()
    task, train_config = ours_task(preset, split, batch_size, steps=warmup + steps, log_every=25, save_every=10**6)
    ticks: list[float] = []

    def clock() -> bool:  # the loop asks once before each step
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)
        ticks.append(time.perf_counter())
        return False

    with tempfile.TemporaryDirectory() as folder:
        train_loop(task, train_config, Path(folder), should_stop=clock, runtime=runtime)
    ticks.append(time.perf_counter())  # (the final save comes after the last step, so it is not counted)
    measured = ticks[warmup:-1]
    step_s = _mean_step(measured)
    return Throughput(batch_size / step_s, step_s, len(measured) - 1)


def plain_trainer(preset: Preset, split: Split, batch_size: int, seed: int = 0) -> PlainTrainer:
    torch.manual_seed(seed)
    model = PlainVQVAE(preset.vqvae)
    return PlainTrainer(model, split.train.images, batch_size, preset.train.learning_rate, seed)


def plain_throughput(preset: Preset, split: Split, batch_size: int, warmup: int, steps: int) -> Throughput:
    trainer = plain_trainer(preset, split, batch_size)
    for _ in range(warmup):
        trainer.step()
    ticks = [time.perf_counter()]
    for _ in range(steps):
        trainer.step()
        ticks.append(time.perf_counter())
    step_s = _mean_step(ticks)
    return Throughput(batch_size / step_s, step_s, steps)


@torch.inference_mode()
def ours_psnr(model: VQVAE, images: torch.Tensor) -> float:
    """Held-out PSNR (dB) of our model's reconstructions, through its codes as the app sees them."""
    was_training = model.training
    model.eval()
    x_hat = model.decode_indices(model.encode(images)).clamp(0, 1)
    model.train(was_training)
    return psnr_db(float((x_hat - images).pow(2).mean()))


class _QualityWatch:
    """Evaluates every `every` steps; keeps the evaluation time out of the training time."""

    def __init__(self, evaluate: Callable[[], float], target_db: float, cap_s: float):
        self.evaluate, self.target_db, self.cap_s = evaluate, target_db, cap_s
        self.eval_s, self.best = 0.0, float("-inf")
        self.reached_at: tuple[float, int] | None = None
        self.train_s = 0.0

    def check(self, train_s: float, step: int) -> bool:
        """Record the PSNR after `step`; True when it is time to stop."""
        start = time.perf_counter()
        psnr = self.evaluate()
        self.eval_s += time.perf_counter() - start
        self.best, self.train_s = max(self.best, psnr), train_s
        if psnr >= self.target_db and self.reached_at is None:
            self.reached_at = (train_s, step)
        return self.reached_at is not None or train_s >= self.cap_s

    def result(self) -> TimeToQuality:
        reached = self.reached_at is not None
        train_s, steps = self.reached_at if reached else (None, None)
        return TimeToQuality(reached, train_s, steps, self.best, self.cap_s)


def ours_time_to_quality(
    preset: Preset, split: Split, batch_size: int, target_db: float, cap_s: float, every: int
) -> TimeToQuality:
    """Our trainer from a fresh start (the preset's schedule, at this batch size) until the target PSNR."""
    task, train_config = ours_task(preset, split, batch_size, log_every=every, save_every=10**6)
    watch = _QualityWatch(lambda: ours_psnr(task.model, split.test.images), target_db, cap_s)
    done = [False]

    def on_event(event: TrainEvent) -> None:
        if event.kind == "log":
            done[0] = watch.check(event.elapsed_s - watch.eval_s, event.step)

    with tempfile.TemporaryDirectory() as folder:
        train_loop(task, train_config, Path(folder), on_event=on_event, should_stop=lambda: done[0])
    return watch.result()


def plain_time_to_quality(
    preset: Preset, split: Split, batch_size: int, target_db: float, cap_s: float, every: int
) -> TimeToQuality:
    start = time.perf_counter()
    trainer = plain_trainer(preset, split, batch_size)
    watch = _QualityWatch(lambda: plain_psnr(trainer.model, split.test.images), target_db, cap_s)
    step = 0
    while True:
        trainer.step()
        step += 1
        if step % every == 0 and watch.check(time.perf_counter() - start - watch.eval_s, step):
            return watch.result()


def _count(step: Callable[[], None]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def ours_step_flops(preset: Preset, split: Split, batch_size: int) -> int:
    """Floating-point operations of one training step of our model: forward, loss and backward."""
    task, _ = ours_task(preset, split, batch_size)
    task.model.train()
    task.loss(task.model, task.batch(0))  # the first batch initialises the codebook (k-means): not a step's cost
    return _count(lambda: task.loss(task.model, task.batch(1))[0].backward())


def plain_step_flops(preset: Preset, split: Split, batch_size: int) -> int:
    trainer = plain_trainer(preset, split, batch_size)
    return _count(lambda: trainer.loss(trainer._batch()).backward())
