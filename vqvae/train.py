"""One training loop, for the VQ-VAE now and the prior after it.

The loop knows nothing of the model it trains (minGPT's Trainer): a `Task` hands
it batches and a loss, and it handles the rest the same way for both: Adam with
cosine decay, a non-finite check on every step, progress events, history curves,
periodic atomic saves, exact resume and a cooperative stop. It runs on any device, in mixed
precision, and as one rank of a data-parallel run (runtime.py, distributed.py).

The VQ-VAE objective (equation 3 of van den Oord et al. 2017):
    L = ||x - D(z_q)||^2 / Var(x) + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2
The reconstruction term is divided by the training data's pixel variance, so its
scale does not depend on the data set (as in the paper authors' Sonnet example).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from . import distributed
from .atomic import remove_stale_temp_files
from .classifier import Classifier
from .config import CLASSIFIER_STEPS, DataFacts, TrainConfig, classifier_training
from .data import Split, load_split, pixel_variance, random_shift
from .errors import CheckpointError, TrainingError
from .families import Model, ModelSettings, build_model, level_key, level_names
from .image_cache import StreamedImages
from .runtime import Runtime

log = logging.getLogger(__name__)


@dataclass
class TrainEvent:
    """What every long job reports: the CLI shows it with tqdm, the app with live plots."""

    kind: str  # "start", "log", "save" or "end"
    step: int
    total_steps: int | None
    elapsed_s: float
    progress: float  # 0..1, by steps or minutes, whichever is further along
    metrics: dict[str, float] = field(default_factory=dict)


EventCallback = Callable[[TrainEvent], None]


class Task:
    """What the loop trains: a model, its batches and its loss, and the files it saves to."""

    model: torch.nn.Module
    weights_file: str = ckpt.WEIGHTS
    state_file: str = ckpt.TRAIN_STATE
    history_file: str = ckpt.HISTORY

    def batch(self, step: int) -> Any:
        raise NotImplementedError

    def batches(self, start: int) -> Iterator[Any]:
        """The batches of steps start, start + 1, ... in order (a task may make them ahead, in other processes)."""
        return map(self.batch, itertools.count(start))

    def loss(self, network: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of `network` (the model, or DistributedDataParallel's wrapper of it) on a batch, to
        minimise, and the scalars to average over a log window."""
        raise NotImplementedError

    def window_metrics(self) -> dict[str, float]:
        """Metrics over the steps since the last log (e.g. codes used); resets the window."""
        return {}

    def window_tensors(self) -> dict[str, torch.Tensor]:
        """What window_metrics has gathered so far, saved so that a resume logs the same row."""
        return {}

    def load_window_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def save_weights(self, folder: Path, step: int, elapsed_s: float) -> None:
        raise NotImplementedError


class ImageBatches(torch.utils.data.Dataset):
    """The batch of training images of step s, as a data set a DataLoader's workers can read ahead: the
    images of the sampler's rows, shifted as the step's seed says."""

    def __init__(self, images: torch.Tensor | StreamedImages, sampler: EpochSampler, config: TrainConfig):
        self.images, self.sampler = images, sampler
        self.shift, self.seed = config.augment_shift, config.seed

    def __getitem__(self, step: int) -> torch.Tensor:
        x = self.images[self.sampler.rows(step)]
        return random_shift(x, self.shift, self.seed, step, self.sampler.part) if self.shift else x


class EpochSampler:
    """Batch rows for step s as a pure function of (seed, s): resume needs no sampler state. In a
    data-parallel run every rank draws the same batch and keeps its part (Shard.part)."""

    def __init__(self, num_items: int, batch_size: int, seed: int, shard: distributed.Shard | None = None):
        if num_items == 0:
            raise TrainingError("the training data is empty")
        if batch_size > num_items:
            raise TrainingError(f"batch size {batch_size} is larger than the {num_items} training images")
        self.shard = shard or distributed.Shard()
        self.shard.check_batch(batch_size)
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.per_epoch = num_items // batch_size
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.int64)

    def rows(self, step: int) -> torch.Tensor:
        epoch, position = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(self.num_items, generator=generator)
        batch = self._order[position * self.batch_size : (position + 1) * self.batch_size]
        return batch[self.part]

    @property
    def part(self) -> slice:
        """This rank's positions within each batch."""
        return self.shard.part(self.batch_size)


@dataclass
class TrainResult:
    folder: Path
    step: int
    elapsed_s: float
    history: list[dict[str, Any]]
    stopped: bool = False  # asked to stop before its length was reached (on any rank)


def progress(step: int, elapsed_s: float, config: TrainConfig) -> float:
    parts = []
    if config.steps is not None:
        parts.append(step / config.steps)
    if config.minutes is not None:
        parts.append(elapsed_s / (config.minutes * 60))
    return min(1.0, max(parts))


def learning_rate(config: TrainConfig, done: float) -> float:
    """Cosine decay from the base rate to 5% of it over the run."""
    if not config.lr_decay:
        return config.learning_rate
    return config.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * done)))


def gradient_norm(model: torch.nn.Module) -> torch.Tensor:
    """The l2 norm of all gradients together: finite exactly when every gradient is."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads) if grads else torch.zeros(())


def train_loop(
    task: Task,
    config: TrainConfig,
    folder: Path,
    *,
    resume: bool = False,
    on_event: EventCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    runtime: Runtime | None = None,
) -> TrainResult:
    """Train until `config.steps` or `config.minutes` (or a stop) and save; returns where it ended.

    On `runtime`'s device and precision (the CPU in float32 by default). In a data-parallel run
    every rank calls it: the ranks agree each step on the clock, a stop and the logged scalars,
    and rank 0 alone saves and reports."""
    runtime = runtime or Runtime()
    main = runtime.shard.main
    emit = (on_event or (lambda event: None)) if main else (lambda event: None)
    task.model.to(runtime.device)
    optimizer = torch.optim.Adam(task.model.parameters(), lr=config.learning_rate)
    scaler = runtime.grad_scaler()
    step, elapsed, history = 0, 0.0, []
    sums: dict[str, float] = {}
    window_steps = 0
    if resume:
        state = ckpt.load_train_state(folder, task.model, optimizer, task.state_file)
        torch.set_rng_state(state.rng_state)
        step, elapsed = state.step, state.elapsed_s
        sums, window_steps = state.window_sums, state.window_steps
        task.load_window_tensors(state.window_tensors)
        if main and (folder / task.history_file).exists():
            history = [row for row in ckpt.read_json(folder / task.history_file) if row["step"] <= step]
    if main:
        remove_stale_temp_files(folder, (task.weights_file, task.history_file, task.state_file, ckpt.CONFIG))
    task.model.train()
    network = distributed.data_parallel(task.model, runtime.device)
    start = time.perf_counter() - elapsed
    emit(TrainEvent("start", step, config.steps, elapsed, progress(step, elapsed, config)))

    def save() -> None:
        # History first, weights last. A resume starts from the train state's step, which the history
        # then always reaches (a kill in here leaves no gap in a resumed history), and a folder never
        # holds weights without the train state that made them (so with no train state there is
        # nothing to lose, and a resume starts again from step 0).
        state = ckpt.TrainState(
            step, time.perf_counter() - start, torch.get_rng_state(), window_steps, dict(sums), task.window_tensors()
        )
        try:
            ckpt.atomic_write_json(folder / task.history_file, history)
            ckpt.save_train_state(folder, task.model, optimizer, state, task.state_file)
            task.save_weights(folder, step, state.elapsed_s)
        except CheckpointError as error:
            raise TrainingError(
                f"training stopped at step {step}, which could not be saved: {error}. "
                f"A resume continues from the save of step {last_saved}."
            ) from error
        emit(TrainEvent("save", step, config.steps, state.elapsed_s, progress(step, state.elapsed_s, config)))

    def non_finite(what: str, value: float) -> TrainingError:
        return TrainingError(
            f"the {what} became {value} at step {step + 1}; training stopped and the last "
            f"checkpoint (step {last_saved}) was kept. A lower learning rate may help."
        )

    last_saved, stop = step, False
    batches = task.batches(step)
    while True:
        # every rank goes by rank 0's clock and stops when any rank is asked to (a signal reaches each
        # process on its own), so all take the same learning rate and the same number of steps
        elapsed, stop = distributed.agree(time.perf_counter() - start, bool(should_stop and should_stop()))
        done = progress(step, elapsed, config)
        if done >= 1.0 or stop:
            break
        lr = learning_rate(config, done)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with runtime.autocast():
            loss, scalars = task.loss(network, runtime.to_device(next(batches)))
        agreed = distributed.mean_across_ranks([loss.item(), *scalars.values()])  # the whole batch's
        if not math.isfinite(agreed[0]):
            raise non_finite("loss", agreed[0])
        scalars = dict(zip(scalars, agreed[1:]))
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norm = gradient_norm(task.model)
        # a finite loss can still back-propagate inf or NaN; under fp16 loss scaling the scaler skips that step
        if not scaler.is_enabled() and not bool(torch.isfinite(norm)):
            raise non_finite("gradient norm", norm.item())
        scaler.step(optimizer)
        scaler.update()
        step += 1
        window_steps += 1
        for name, value in scalars.items():
            sums[name] = sums.get(name, 0.0) + value
        if step % config.log_every == 0:
            elapsed = time.perf_counter() - start
            row = {"step": step, "time_s": round(elapsed, 3), "lr": lr}
            row |= {name: total / window_steps for name, total in sums.items()} | task.window_metrics()
            if main:
                history.append(row)
            sums, window_steps = {}, 0
            emit(TrainEvent("log", step, config.steps, elapsed, progress(step, elapsed, config), row))
        if step % config.save_every == 0:
            if main:
                save()
            last_saved = step
    # a kill inside the last save, between the train state and the weights, leaves the weights of an earlier
    # step beside the final train state: the resume that finds nothing left to train writes them again
    written = (folder / task.state_file).exists() and ckpt.weights_step(folder / task.weights_file) == step
    if main and (last_saved != step or not written):
        save()
    distributed.barrier()  # the folder is written before any rank goes on
    elapsed = time.perf_counter() - start
    emit(
        TrainEvent("end", step, config.steps, elapsed, progress(step, elapsed, config), history[-1] if history else {})
    )
    return TrainResult(folder, step, elapsed, history, stopped=stop and done < 1.0)


class VQVAETask(Task):
    """Batches of training images and the loss of equation 3, summed over the levels of a hierarchy
    (Razavi et al. 2019, Algorithm 1); each level's codebook terms, perplexity and codes used are
    logged under its own name (`level_key`). Images streamed from a folder's cache are read and fitted
    ahead, in `workers` DataLoader processes."""

    def __init__(
        self,
        model: Model,
        images: torch.Tensor | StreamedImages,
        config: TrainConfig,
        data_variance: float,
        shard: distributed.Shard | None = None,
        workers: int = 2,
    ):
        self.model, self.data_variance = model, data_variance
        self.steps = ImageBatches(images, EpochSampler(images.shape[0], config.batch_size, config.seed, shard), config)
        self.workers = workers if isinstance(images, StreamedImages) else 0
        self.count_codes(model)

    def count_codes(self, model: Model) -> None:
        """Start counting each level's codes over a log window."""
        self.levels = level_names(model)
        self.window_counts = {level: torch.zeros(model.num_embeddings, dtype=torch.int64) for level in self.levels}

    def batch(self, step: int) -> torch.Tensor:
        return self.steps[step]

    def batches(self, start: int) -> Iterator[torch.Tensor]:
        if not self.workers:
            return super().batches(start)
        # its own generator: a DataLoader seeds its workers from the global one otherwise, which would move the
        # draws of the codebook's initialisation and restarts (the batches themselves draw nothing)
        loader = torch.utils.data.DataLoader(
            self.steps,
            batch_size=None,
            sampler=itertools.count(start),
            num_workers=self.workers,
            prefetch_factor=4,
            generator=torch.Generator().manual_seed(0),
        )
        return iter(loader)

    def reconstruction(self, network: torch.nn.Module, x: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """The network's output on a batch (its `levels` of quantiser outputs) and the mean squared
        reconstruction error, the first term of equation 3 before it is divided by the data's variance."""
        out = network(x)
        return out, torch.nn.functional.mse_loss(out.x_hat.float(), x)

    def loss(self, network: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        out, reconstruction = self.reconstruction(network, batch)
        loss = reconstruction / self.data_variance + sum(vq.loss for vq in out.levels)
        scalars = {"loss": loss.item(), "reconstruction_mse": reconstruction.item()}
        for level, vq in zip(self.levels, out.levels):
            self.window_counts[level] += vq.counts
            scalars[level_key("codebook_loss", level)] = vq.codebook_loss.item()
            scalars[level_key("commitment_loss", level)] = vq.commitment_loss.item()
            scalars[level_key("perplexity", level)] = vq.perplexity.item()
        return loss, scalars

    def window_metrics(self) -> dict[str, float]:
        metrics = {}
        for level, counts in self.window_counts.items():
            used = int((counts > 0).sum())
            metrics[level_key("codes_used", level)] = used
            metrics[level_key("codes_used_fraction", level)] = used / self.model.num_embeddings
            counts.zero_()
        return metrics

    def window_tensors(self) -> dict[str, torch.Tensor]:
        return {level_key("counts", level): counts for level, counts in self.window_counts.items()}

    def load_window_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        for level, counts in self.window_counts.items():
            saved = tensors.get(level_key("counts", level))
            if saved is not None and saved.shape == counts.shape:
                counts.copy_(saved)

    def save_weights(self, folder: Path, step: int, elapsed_s: float) -> None:
        ckpt.save_weights(folder, self.model, step, elapsed_s)


def train_vqvae(
    config: ModelSettings,
    train_config: TrainConfig,
    folder: str | Path,
    *,
    resume: bool = False,
    on_event: EventCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    data: Split | None = None,
    runtime: Runtime | None = None,
    stream: bool | None = None,
    workers: int = 2,
    training: Any = None,
) -> TrainResult:
    """Train a VQ-VAE (or a VQ-VAE-2, by the settings' type) into `folder`; with resume=True continue the
    run saved there exactly. training: its data and task (family_data.py; by default the images of
    `data` or of the settings' source).

    Everything is checked (settings, data, batch size) before the first file is written. A run
    killed after its settings were saved but before its first save is resumed from step 0.
    In a data-parallel run every rank calls it with its own `runtime`; rank 0 writes the folder.
    stream: read a folder: source from its cache batch by batch, made ahead by `workers` processes
    (data.load_split; None: when it is too large to load).
    """
    folder = Path(folder)
    runtime = runtime or Runtime()
    shard = runtime.shard
    if not resume and (folder / ckpt.CONFIG).exists():
        raise TrainingError(f"{folder} already holds a checkpoint; resume it or choose another folder")
    saved = (folder / ckpt.TRAIN_STATE).exists()
    if resume and not saved and (folder / ckpt.WEIGHTS).exists():
        raise CheckpointError(f"{folder} has no {ckpt.TRAIN_STATE} to resume from")
    training = training or ImageData(config, train_config, data, stream)
    if resume:
        recorded = ckpt.load_config(folder).data.data_variance
        if recorded is None:
            raise CheckpointError(f"{folder / ckpt.CONFIG} does not record the training data's variance to resume with")
        data_variance = recorded
    else:
        data_variance = training.variance() or 1.0
    config = training.fitted(config)
    torch.manual_seed(train_config.seed)
    model = build_model(config)
    task = training.task(model, train_config, data_variance, shard, workers)
    distributed.barrier()  # every rank has checked the folder before rank 0 writes to it
    if not resume and shard.main:
        ckpt.save_config(folder, config, train_config, training.facts(data_variance))
    elif resume and not saved:
        log.info("%s was stopped before its first save: training it from step 0 with its saved settings", folder)
    result = train_loop(
        task,
        train_config,
        folder,
        resume=resume and saved,
        on_event=on_event,
        should_stop=should_stop,
        runtime=runtime,
    )
    log.info("trained %s to step %d in %.1f s", folder, result.step, result.elapsed_s)
    return result


class ImageData:
    """A VQ-VAE's (or VQ-VAE-2's) training images: their variance, what config.json records of them, and
    the task that trains on them."""

    def __init__(self, config: ModelSettings, train_config: TrainConfig, data: Split | None, stream: bool | None):
        self.split = data or load_split(train_config.data, config.model.image_size, config.model.in_channels, stream)

    def fitted(self, config: ModelSettings) -> ModelSettings:
        """The settings as the data asks for them (an image model's are the preset's)."""
        return config

    def variance(self) -> float:
        images = self.split.train.images
        if isinstance(images, torch.Tensor) and not bool(torch.isfinite(images).all()):  # a cache holds bytes
            raise TrainingError("the training images hold NaN or Inf values")
        return pixel_variance(images)

    def facts(self, data_variance: float) -> DataFacts:
        return DataFacts(data_variance, list(self.split.train.class_names), len(self.split.train.images))

    def task(
        self, model: Model, config: TrainConfig, data_variance: float, shard: distributed.Shard, workers: int
    ) -> VQVAETask:
        return VQVAETask(model, self.split.train.images, config, data_variance, shard, workers)


class ClassifierTask(Task):
    """Batches of shifted training images and their labels, and the cross-entropy of the classifier."""

    weights_file = ckpt.CLASSIFIER
    state_file = ckpt.CLASSIFIER_STATE
    history_file = ckpt.CLASSIFIER_HISTORY

    def __init__(self, model: Classifier, split: Split, config: TrainConfig, shard: distributed.Shard | None = None):
        self.model, self.images, self.labels = model, split.train.images, split.train.labels
        self.sampler = EpochSampler(len(self.images), config.batch_size, config.seed, shard)
        self.seed = config.seed

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.sampler.rows(step)
        return random_shift(self.images[rows], 2, self.seed, step, self.sampler.part), self.labels[rows]

    def loss(self, network: torch.nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        loss = torch.nn.functional.cross_entropy(network(x).float(), y)
        return loss, {"loss": loss.item()}

    def save_weights(self, folder: Path, step: int, elapsed_s: float) -> None:
        ckpt.write_tensors(folder / self.weights_file, self.model.state_dict(), {"step": str(step)})


def train_classifier(
    folder: Path,
    split: Split,
    steps: int = CLASSIFIER_STEPS,
    seed: int = 0,
    should_stop: Callable[[], bool] | None = None,
    runtime: Runtime | None = None,
) -> Classifier:
    """Train the sample-scoring classifier on the train split (labels required) and save it beside the checkpoint.
    Stopped early (should_stop), it is not named in config.json, so it is not used and the next run trains it
    again from the start."""
    c, size = split.train.images.shape[1], split.train.images.shape[-1]
    config = classifier_training(steps, seed)
    torch.manual_seed(seed)  # its first weights too, not only its dropout and batches
    model = Classifier(c, size, len(split.train.class_names))
    runtime = runtime or Runtime()
    task = ClassifierTask(model, split, config, runtime.shard)
    result = train_loop(task, config, Path(folder), should_stop=should_stop, runtime=runtime)
    if result.step >= steps and runtime.shard.main:
        ckpt.update_config(folder, classifier={"in_channels": c, "image_size": size, "num_classes": model.shape[2]})
    return model.cpu().eval()
