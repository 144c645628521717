"""What a training run started from the app does, inside its spawned process (see runs.py).

    vqvae     train the VQ-VAE into runs_dir/NAME (section 3.1, equation 3)
    evaluate  held-out metrics -> metrics.json
    analyse   codebook projections, usage, tiles -> analysis.safetensors
    prior     fit the (class-conditional when labelled) PixelCNN prior (section 3.2),
              the sample-scoring classifier, and evaluate again
    done

Every `TrainEvent` goes to the parent as a small dict on a `multiprocessing.Queue`, and a
`multiprocessing.Event` is the loop's `should_stop`. Only the child imports this module (and
so torch): the app that starts runs never does.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .analysis import analyse_checkpoint
from .classifier import load_classifier, train_classifier
from .config import train_config_from_dict, vqvae_config_from_dict
from .data import load_split
from .errors import VQVAEError
from .evaluate import evaluate_checkpoint
from .runs import forget_unfinished
from .train import EventCallback, TrainEvent, train_prior, train_vqvae

log = logging.getLogger(__name__)

MAX_MESSAGE = 500  # characters of an unexpected error shown to the user
TRAINING_NICENESS = 10  # the run yields the CPU to the app's requests (Linux: +10 of 19)


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


def run_job(job: dict[str, Any], queue: multiprocessing.Queue, stop: StopEvent) -> None:
    """The whole run in the spawned process; reports its end on the queue, whatever happens."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the app's terminal ends the app, which ends us
    torch.set_num_threads(1)  # the app's own requests keep a core
    os.nice(TRAINING_NICENESS)  # and the cores go to a request first when one comes in
    report = _Reporter(queue)
    try:
        report.end(*_pipeline(job, report, stop.is_set))
    except (VQVAEError, ValueError) as error:
        forget_unfinished(Path(job["folder"]))
        report.end("failed", str(error))
    except Exception as error:
        log.exception("training run %s failed", job["folder"])
        forget_unfinished(Path(job["folder"]))
        report.end("failed", f"unexpected error ({type(error).__name__}): {error}"[:MAX_MESSAGE])
    finally:
        queue.close()
        queue.join_thread()  # the last message is in the pipe before the process ends
