"""Training runs started from the app: one background process at a time, watched through a queue.

A run does what `python -m vqvae train` and `train-prior` do, in order, in a spawned child
process (so the app's threads and torch state never leak into it):

    vqvae     train the VQ-VAE into runs_dir/NAME (section 3.1, equation 3)
    evaluate  held-out metrics -> metrics.json
    analyse   codebook projections, usage, tiles -> analysis.safetensors
    prior     fit the (class-conditional when labelled) PixelCNN prior (section 3.2),
              the sample-scoring classifier, and evaluate again
    done

The child reports every `TrainEvent` as a small dict on a `multiprocessing.Queue` and reads
a `multiprocessing.Event` as its `should_stop`, so a stop lands after the current step and
the loop saves before it returns; every file is written atomically, so the folder always
loads. The parent side, `RunManager`, folds the queue into a `RunStatus` on each `status()`.

"spawn" starts a fresh interpreter that re-runs the top level of the app's main script (as
`__mp_main__`), so that script must only define things there and launch under
`if __name__ == "__main__":`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import multiprocessing
import numbers
import re
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from queue import Empty
from typing import Any

import torch

from . import checkpoint as ckpt
from .analysis import analyse_checkpoint
from .classifier import load_classifier, train_classifier
from .config import (
    TrainConfig,
    VQVAEConfig,
    preset,
    to_dict,
    train_config_from_dict,
    vqvae_config_from_dict,
)
from .data import load_split
from .errors import TrainingError, VQVAEError
from .evaluate import evaluate_checkpoint
from .train import EventCallback, TrainEvent, train_prior, train_vqvae

log = logging.getLogger(__name__)

STATES = ("idle", "running", "stopping", "finished", "stopped", "failed")
ACTIVE = ("running", "stopping")
PHASES = ("vqvae", "evaluate", "analyse", "prior", "done")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
PRIOR_BATCH_SIZE = 128  # as `python -m vqvae train-prior`
PRIOR_LEARNING_RATE = 1e-3  # as `python -m vqvae train-prior`
CLASSIFIER_STEPS = 1500  # as `train_classifier`
MAX_MESSAGE = 500  # characters of an unexpected error shown to the user


def _whole(name: str, value: Any) -> int | None:
    """An int from a form value (the browser sends 32.0 for 32); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise TrainingError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def _number(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TrainingError(f"{name} must be a number, not {value!r}")
    return float(value)


@dataclass
class RunSettings:
    """What the Training page asks for: a preset, with the fields given (not None) on top."""

    name: str  # folder name under the runs folder
    preset: str = "mnist"
    data: str | None = None  # a data source (see data.load_source); None or "": the preset's
    steps: int | None = None  # steps and minutes: the first to come ends the VQ-VAE run
    minutes: float | None = None
    num_embeddings: int | None = None  # K
    embedding_dim: int | None = None  # D
    update: str | None = None  # "ema" or "loss"; None or "": the preset's
    learning_rate: float | None = None
    batch_size: int | None = None
    seed: int = 0
    prior_minutes: float = 2.0  # 0: no prior
    classifier_steps: int = CLASSIFIER_STEPS  # 0: no sample-scoring classifier
    with_umap: bool = True  # UMAP adds ~30 s to the analysis; PCA is always there

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise TrainingError(
                f"run name {self.name!r} is not allowed: use 1 to 64 letters, digits, '-' or '_' (no spaces or slashes)"
            )
        for name in ("preset", "data", "update"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TrainingError(f"{name} must be text, not {value!r}")
        self.data = (self.data or "").strip() or None  # an empty form field: the preset's
        self.update = self.update or None
        for name in ("steps", "num_embeddings", "embedding_dim", "batch_size", "seed", "classifier_steps"):
            setattr(self, name, _whole(name, getattr(self, name)))
        for name in ("minutes", "learning_rate", "prior_minutes"):
            setattr(self, name, _number(name, getattr(self, name)))
        if self.seed is None or not 0 <= self.seed < 2**31:
            raise TrainingError("seed must be a whole number between 0 and 2^31 - 1")
        if self.prior_minutes is None or not (math.isfinite(self.prior_minutes) and self.prior_minutes >= 0):
            raise TrainingError("prior_minutes must be a finite number >= 0 (0: no prior)")
        if self.classifier_steps is None or self.classifier_steps < 0:
            raise TrainingError("classifier_steps must be a whole number >= 0 (0: no classifier)")


@dataclass
class RunPlan:
    """The validated configs a run trains with; plain dicts of them travel to the child."""

    vqvae: VQVAEConfig
    train: TrainConfig
    prior_train: TrainConfig | None  # None: no prior


def _given(settings: RunSettings, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in names if getattr(settings, name) is not None}


def plan_run(settings: RunSettings) -> RunPlan:
    """The preset with the given fields on top (as the CLI's `train`); bad values raise TrainingError."""
    try:
        chosen = preset(settings.preset)
        config = VQVAEConfig(
            model=chosen.vqvae.model,
            quantizer=dataclasses.replace(
                chosen.vqvae.quantizer, **_given(settings, ("num_embeddings", "embedding_dim", "update"))
            ),
        )
        length = {"steps": settings.steps, "minutes": settings.minutes}
        given_length = settings.steps is not None or settings.minutes is not None
        train = dataclasses.replace(
            chosen.train,
            **_given(settings, ("data", "learning_rate", "batch_size", "seed")),
            **(length if given_length else {}),
        )
        prior_train = None
        if settings.prior_minutes > 0:
            prior_train = TrainConfig(
                data=train.data,
                minutes=settings.prior_minutes,
                batch_size=PRIOR_BATCH_SIZE,
                learning_rate=PRIOR_LEARNING_RATE,
                seed=train.seed,
            )
    except ValueError as error:
        raise TrainingError(f"bad setting: {error}") from error
    return RunPlan(config, train, prior_train)


@dataclass
class RunStatus:
    """A snapshot of the one run a RunManager owns, for the Training page to draw."""

    state: str = "idle"  # one of STATES
    name: str = ""
    folder: Path | None = None  # runs_dir / name
    phase: str = ""  # one of PHASES; "" when idle
    progress: float = 0.0  # 0..1 of the current phase
    step: int = 0  # training step of the current (or last) training phase
    elapsed_s: float = 0.0  # training time of the current (or last) training phase
    vqvae_history: list[dict[str, float]] = field(default_factory=list)  # "log" rows: loss, perplexity, codes_used
    prior_history: list[dict[str, float]] = field(default_factory=list)  # "log" rows: loss, bits_per_latent
    message: str = ""  # what is going on; the error on failure; a one-line summary at the end

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


# ---------------------------------------------------------------- the child process


class _Reporter:
    """The child's side of the queue: small plain dicts that the parent folds into RunStatus."""

    def __init__(self, queue: multiprocessing.Queue):
        self.queue = queue

    def phase(self, phase: str, note: str) -> None:
        self.queue.put({"type": "phase", "phase": phase, "note": note})

    def events(self, phase: str) -> EventCallback:
        def on_event(event: TrainEvent) -> None:
            metrics = dict(event.metrics) if event.kind == "log" else {}
            self.queue.put(
                {
                    "type": "event",
                    "phase": phase,
                    "kind": event.kind,
                    "step": event.step,
                    "elapsed_s": event.elapsed_s,
                    "progress": event.progress,
                    "metrics": metrics,
                }
            )

        return on_event

    def end(self, state: str, message: str) -> None:
        self.queue.put({"type": "end", "state": state, "message": message})


def _summary(metrics: dict[str, Any]) -> str:
    line = (
        f"VQ-VAE: {metrics['train_steps']} steps in {metrics['train_time_s']:.1f} s; held-out MSE "
        f"{metrics['mse']:.4f} (PSNR {metrics['psnr_db']:.1f} dB), perplexity {metrics['perplexity']:.1f}, "
        f"{metrics['codes_used']}/{metrics['num_embeddings']} codes used"
    )
    if "prior" in metrics:
        line += f"; learned prior: {metrics['prior']['learned_bits_per_latent']:.2f} bits per latent held out"
    return line


def _train_prior_phase(folder: Path, job: dict[str, Any], report: _Reporter, stopped: Callable[[], bool]) -> None:
    """The prior (conditional when the data has labels), then the classifier that scores its samples."""
    config, vqvae_train, extra = ckpt.load_config(folder)
    labelled = bool(extra.get("class_names"))
    prior_train = train_config_from_dict(job["prior_train"])
    # a small folder of images may hold fewer code grids than the default batch
    prior_train = dataclasses.replace(prior_train, batch_size=min(prior_train.batch_size, extra["train_images"]))
    kind = "class-conditional" if labelled else "unconditional"
    report.phase("prior", f"training the {kind} PixelCNN prior for {prior_train.minutes:g} min")
    train_prior(folder, prior_train, conditional=labelled, on_event=report.events("prior"), should_stop=stopped)
    if labelled and job["classifier_steps"] and not stopped() and load_classifier(folder) is None:
        report.phase("prior", "training the classifier that scores the prior's samples")
        split = load_split(vqvae_train.data, config.model.image_size, config.model.in_channels)
        train_classifier(folder, split, steps=job["classifier_steps"])


def _pipeline(job: dict[str, Any], report: _Reporter, stopped: Callable[[], bool]) -> tuple[str, str]:
    """Train, evaluate, analyse, then the prior; returns the end state and its summary."""
    folder = Path(job["folder"])
    config = vqvae_config_from_dict(job["vqvae"])
    train = train_config_from_dict(job["train"])
    report.phase("vqvae", f"training the VQ-VAE on {train.data}")
    train_vqvae(config, train, folder, on_event=report.events("vqvae"), should_stop=stopped)
    # a stopped run is still evaluated and analysed (PCA only, seconds), so every page can open it
    report.phase("evaluate", "measuring the VQ-VAE on the held-out split")
    metrics = evaluate_checkpoint(folder)
    with_umap = job["with_umap"] and not stopped()
    report.phase("analyse", "projecting the codebook" + (" (PCA and UMAP)" if with_umap else " (PCA)"))
    analyse_checkpoint(folder, with_umap=with_umap)
    if job["prior_train"] is not None and not stopped():
        _train_prior_phase(folder, job, report, stopped)
        report.phase("evaluate", "measuring the VQ-VAE and its priors on the held-out split")
        metrics = evaluate_checkpoint(folder)
    if stopped():
        return "stopped", f"stopped early; {folder.name} was kept. " + _summary(metrics)
    return "finished", _summary(metrics)


def _forget_unfinished(folder: Path) -> None:
    """A run that never saved weights leaves no folder behind to clutter the checkpoint picker."""
    if (folder / ckpt.WEIGHTS).exists():
        return
    with contextlib.suppress(OSError):
        (folder / ckpt.CONFIG).unlink(missing_ok=True)
        folder.rmdir()  # only when empty: nothing this run did not write is ever removed


def _child_main(job: dict[str, Any], queue: multiprocessing.Queue, stop: StopEvent) -> None:
    """Entry point of the spawned process; reports its end on the queue, whatever happens."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the app's terminal ends the app, which ends us
    torch.set_num_threads(1)  # the app's own requests keep a core
    report = _Reporter(queue)
    try:
        report.end(*_pipeline(job, report, stop.is_set))
    except (VQVAEError, ValueError) as error:
        _forget_unfinished(Path(job["folder"]))
        report.end("failed", str(error))
    except Exception as error:
        log.exception("training run %s failed", job["folder"])
        _forget_unfinished(Path(job["folder"]))
        report.end("failed", f"unexpected error ({type(error).__name__}): {error}"[:MAX_MESSAGE])
    finally:
        queue.close()
        queue.join_thread()  # the last message is in the pipe before the process ends


# ---------------------------------------------------------------- the parent side


@dataclass
class _Run:
    status: RunStatus
    process: BaseProcess
    queue: multiprocessing.Queue
    stop: StopEvent
    forced: bool = False


class RunManager:
    """Owns at most one background training run writing into `runs_dir`.

    Thread-safe: the app may call status() from a timer while a button calls stop().
    """

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._run: _Run | None = None

    def start(self, settings: RunSettings) -> None:
        """Validate, then start the run in a background process; raises TrainingError if it cannot."""
        with self._lock:
            current = self._refresh()
            if current is not None and current.status.active:
                raise TrainingError(f"a training run is already going: {current.status.name}")
            plan = plan_run(settings)
            folder = self.runs_dir / settings.name
            if folder.exists():
                raise TrainingError(f"{folder} already exists; choose another run name")
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            job = {
                "folder": str(folder),
                "vqvae": to_dict(plan.vqvae),
                "train": to_dict(plan.train),
                "prior_train": None if plan.prior_train is None else to_dict(plan.prior_train),
                "classifier_steps": settings.classifier_steps,
                "with_umap": bool(settings.with_umap),
            }
            queue, stop = self._context.Queue(), self._context.Event()
            process = self._context.Process(
                target=_child_main, args=(job, queue, stop), name=f"vqvae-run-{settings.name}", daemon=True
            )
            status = RunStatus("running", settings.name, folder, "vqvae", message="starting the training process")
            process.start()
            self._run = _Run(status, process, queue, stop)
            log.info("started training run %s (pid %s)", folder, process.pid)

    def stop(self, force: bool = False) -> None:
        """Ask the run to stop after its current step (it saves, then exits).

        force=True ends the process at once instead: files are written atomically, so the
        folder keeps what it last saved (the VQ-VAE saves every `save_every` steps).
        """
        with self._lock:
            run = self._refresh()
            if run is None or not run.status.active:
                return
            run.stop.set()
            run.status.state = "stopping"
            if force:
                run.forced = True
                run.process.terminate()
                run.process.join(timeout=5)
                self._refresh()
            log.info("asked training run %s to stop%s", run.status.folder, " at once" if force else "")

    def status(self) -> RunStatus:
        """A snapshot of the run: drains what the child has reported since the last call."""
        with self._lock:
            run = self._refresh()
            if run is None:
                return RunStatus()
            return dataclasses.replace(
                run.status,
                vqvae_history=list(run.status.vqvae_history),
                prior_history=list(run.status.prior_history),
            )

    def _refresh(self) -> _Run | None:
        run = self._run
        if run is None or not run.status.active:
            return run
        alive = run.process.is_alive()  # before draining: a child gone now has put all it will put
        _drain(run)
        if run.status.active and not alive:
            _drain(run)
        if run.status.active and not alive:
            _gone_without_a_word(run)
        return run


def _gone_without_a_word(run: _Run) -> None:
    """The child ended (killed, out of memory, stopped at once) before it could report its end."""
    folder, phase = run.status.folder, run.status.phase
    _forget_unfinished(folder)
    kept = f"{folder.name} keeps its last save" if folder.exists() else "nothing had been saved yet"
    if run.forced:
        _end(run, "stopped", f"stopped at once in the {phase} phase; {kept}")
    else:
        code = run.process.exitcode
        _end(run, "failed", f"the training process ended unexpectedly (exit code {code}) in the {phase} phase; {kept}")


def _drain(run: _Run) -> None:
    while run.status.active:
        try:
            message = run.queue.get_nowait()
        except (Empty, OSError, EOFError, ValueError):
            return
        _fold(run, message)


def _fold(run: _Run, message: dict[str, Any]) -> None:
    """One message from the child into the run's status."""
    status = run.status
    if message["type"] == "phase":
        status.phase, status.progress, status.message = message["phase"], 0.0, message["note"]
    elif message["type"] == "event":
        status.phase = message["phase"]
        status.step, status.elapsed_s, status.progress = message["step"], message["elapsed_s"], message["progress"]
        if message["kind"] == "log":
            history = status.prior_history if message["phase"] == "prior" else status.vqvae_history
            history.append(message["metrics"])
    elif message["type"] == "end":
        if message["state"] != "failed":
            status.phase, status.progress = "done", 1.0
        _end(run, message["state"], message["message"])


def _end(run: _Run, state: str, message: str) -> None:
    run.status.state, run.status.message = state, message
    level = logging.WARNING if state == "failed" else logging.INFO
    log.log(level, "training run %s %s: %s", run.status.name, state, message)
    run.process.join(timeout=0)  # reaps the child if it has exited
    run.queue.close()
