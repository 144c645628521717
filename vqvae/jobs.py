"""The pipeline, written once: the steps from data to a folder every page can open.

    vqvae       train the VQ-VAE into the folder (section 3.2, equation 3)
    evaluate    held-out metrics -> metrics.json
    analyse     the codebook's projections, usage and tiles -> analysis.safetensors
    prior       fit the gated PixelCNN to the code grids (section 3.3), class-conditional
                when the data is labelled; then the classifier that scores its samples
    evaluate    again, with the priors

`python -m vqvae train` runs the first three, `train-prior` the prior, and the app's background
run all of them; each reports through a `Progress`. A run stopped in its VQ-VAE phase ends there,
or (`finish_when_stopped`, the app's runs) is still evaluated and analysed (PCA only),
so that every page can open what it kept.

In a data-parallel run (distributed.py) every rank runs the job: the training steps together,
the evaluations and analyses on rank 0 alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checkpoint as ckpt
from . import distributed
from .analysis import Analysis, analyse_checkpoint
from .classifier import load_classifier
from .config import CLASSIFIER_STEPS, TrainConfig, VQVAEConfig
from .data import load_split
from .evaluate import evaluate_checkpoint
from .family_data import training_data
from .files import prior_stem
from .prior_training import grid_count, train_prior
from .runtime import Runtime
from .train import EventCallback, TrainResult, train_classifier, train_vqvae

PHASES = ("vqvae", "evaluate", "analyse", "prior", "done")


@dataclass
class PriorJob:
    """How the prior step goes."""

    train: TrainConfig  # config.prior_training(...) for the defaults; ignored on resume (the folder's own)
    settings: dict[str, Any] = field(default_factory=dict)  # PriorConfig fields beyond K and the grid
    conditional: bool | None = None  # None: class-conditional exactly when the data is labelled
    resume: bool = False
    levels: tuple[str, ...] | None = None  # a hierarchy's levels to fit a prior to, in order (None: every one)
    classifier_steps: int = CLASSIFIER_STEPS  # 0: no sample-scoring classifier
    fit_batch: bool = False  # a batch larger than the code grids shrinks to them (a small folder of images)


@dataclass
class Job:
    """Which steps run on one folder, and how."""

    folder: Path
    vqvae: VQVAEConfig | None = None  # None: the folder's VQ-VAE is trained already
    train: TrainConfig | None = None
    resume: bool = False  # continue the VQ-VAE run saved in the folder
    evaluate: bool = True
    analyse: bool = True
    with_umap: bool = True  # UMAP beside PCA in the analysis (numba's first fit takes a while)
    prior: PriorJob | None = None
    finish_when_stopped: bool = False  # a stopped VQ-VAE is still evaluated and analysed
    runtime: Runtime = field(default_factory=Runtime)  # device, precision, and this process's rank
    stream: bool | None = None  # read a folder: source from its cache batch by batch (None: when too large to load)
    workers: int = 2  # processes that read and fit streamed batches ahead


class Progress:
    """What a job reports; the command line and the app's run each show it their own way."""

    def phase(self, phase: str, note: str) -> None:
        """A step begins."""

    def events(self, phase: str) -> EventCallback:
        """The training events of a step's loop."""
        return lambda event: None

    def done(self, phase: str, result: Any) -> None:
        """A step ended with its result: a TrainResult, the metrics dict, or each level's Analysis."""


@dataclass
class Outcome:
    stopped: bool
    vqvae: TrainResult | None = None
    prior: TrainResult | None = None
    metrics: dict[str, Any] | None = None  # the last evaluation's
    analysis: dict[str | None, Analysis] | None = None  # each level's, top first (None: a VQ-VAE's one grid)


def run(job: Job, progress: Progress | None = None, should_stop: Callable[[], bool] | None = None) -> Outcome:
    """Run the job's steps in order. A stop ends the current step's loop (which saves) and the steps
    after it, but for the evaluation and analysis that `finish_when_stopped` keeps."""
    progress = progress or Progress()
    stopped = should_stop or (lambda: False)
    outcome = Outcome(stopped=False)
    main = job.runtime.shard.main

    def halted() -> bool:
        outcome.stopped = outcome.stopped or stopped()
        return outcome.stopped and not job.finish_when_stopped

    if job.vqvae is not None and job.train is not None:
        progress.phase("vqvae", f"training the VQ-VAE on {job.train.data}")
        outcome.vqvae = train_vqvae(
            job.vqvae,
            job.train,
            job.folder,
            resume=job.resume,
            on_event=progress.events("vqvae"),
            should_stop=stopped,
            runtime=job.runtime,
            workers=job.workers,
            training=training_data(job.vqvae, job.train, job.stream),
        )
        progress.done("vqvae", outcome.vqvae)
        outcome.stopped = outcome.vqvae.stopped  # agreed by every rank
    speech = ckpt.load_config(job.folder).family == "speech" if (job.folder / ckpt.CONFIG).exists() else False
    if speech and job.evaluate and not distributed.agree(0.0, outcome.stopped or stopped())[1]:
        _judges(job, progress, stopped)
    if main and job.evaluate and not halted():
        outcome.metrics = _evaluate(job, progress, "measuring the VQ-VAE on the held-out split")
    if main and job.analyse and not speech and not halted():  # a speech model's analysis: not made yet
        with_umap = job.with_umap and not stopped()
        progress.phase("analyse", "projecting the codebook" + (" (PCA and UMAP)" if with_umap else " (PCA)"))
        outcome.analysis = analyse_checkpoint(job.folder, with_umap=with_umap, device=job.runtime.device)
        progress.done("analyse", outcome.analysis)
    if job.prior is not None and not distributed.agree(0.0, outcome.stopped or stopped())[1]:
        outcome.prior = _prior(job.folder, job.prior, progress, stopped, job.runtime)
        outcome.stopped = outcome.prior.stopped
        if main and job.evaluate and not halted():
            note = "measuring the VQ-VAE and its priors on the held-out split"
            outcome.metrics = _evaluate(job, progress, note)
    halted()
    return outcome


def _judges(job: Job, progress: Progress, stopped: Callable[[], bool]) -> None:
    """A speech model's word and speaker classifiers, trained once on its real training audio: the judges
    of what its reconstructions and conversions keep (speech/classifier.py)."""
    from .speech.classifier import load_judge, train_judge  # the speech family's, loaded only for it
    from .speech.data import load_speech_split

    train = None
    for kind in ("word", "speaker"):
        if load_judge(job.folder, kind) is None and not stopped():
            progress.phase("classifier", f"training the {kind} classifier on the real training audio")
            train = train or load_speech_split(ckpt.load_config(job.folder).train.data).train
            progress.done("classifier", train_judge(job.folder, kind, train, should_stop=stopped, runtime=job.runtime))


def _evaluate(job: Job, progress: Progress, note: str) -> dict[str, Any]:
    progress.phase("evaluate", note)
    metrics = evaluate_checkpoint(job.folder, device=job.runtime.device)
    progress.done("evaluate", metrics)
    return metrics


def _prior(
    folder: Path, job: PriorJob, progress: Progress, stopped: Callable[[], bool], runtime: Runtime
) -> TrainResult:
    """The prior (of each level of a hierarchy, top first), then (labelled data, none yet) the classifier
    that scores its samples. Returns the last prior's result, stopped if any step was."""
    settings = ckpt.load_config(folder)
    labelled = settings.data.labelled
    conditional = labelled if job.conditional is None else job.conditional
    training, grids = job.train, grid_count(settings.data, settings.train)
    if job.fit_batch and 0 < grids < training.batch_size:
        training = dataclasses.replace(training, batch_size=grids)
    kind = "class-conditional" if conditional else "unconditional"
    length = f"{training.minutes:g} min" if training.steps is None else f"{training.steps} steps"
    levels = job.levels or getattr(settings.vqvae, "level_names", (None,))
    for level in levels:
        # a resumed hierarchy starts afresh the levels its run had not reached
        resume = job.resume and (level is None or prior_stem(level) in ckpt.read_config(folder))
        which = "" if level is None else f" of the {level} level"
        progress.phase("prior", f"training the {kind} PixelCNN prior{which}" + ("" if resume else f" for {length}"))
        result = train_prior(
            folder,
            training,
            level=level,
            conditional=conditional,
            settings=job.settings,
            resume=resume,
            on_event=progress.events("prior"),
            should_stop=stopped,
            runtime=runtime,
        )
        progress.done("prior", result)
        if result.stopped:
            return result
    if distributed.agree(0.0, stopped())[1]:  # asked between two steps: on every rank, or on none
        return dataclasses.replace(result, stopped=True)
    if labelled and job.classifier_steps and settings.family != "speech" and load_classifier(folder) is None:
        progress.phase("classifier", "training the classifier that scores the prior's samples")
        model = settings.vqvae.model
        split = load_split(settings.train.data, model.image_size, model.in_channels)
        classifier = train_classifier(folder, split, steps=job.classifier_steps, should_stop=stopped, runtime=runtime)
        progress.done("classifier", classifier)
    return result
