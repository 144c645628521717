"""The child's side of a training run started from the app (runs.py is the parent's side).

In its spawned process the run goes through the whole pipeline (jobs.py: the VQ-VAE, evaluate,
analyse, the prior and its classifier, evaluate again) into runs_dir/NAME. Every `TrainEvent`
goes to the parent as a small dict on a `multiprocessing.Queue`, and a `multiprocessing.Event`
is the loops' `should_stop`. Importing this module loads no torch (the app imports it to name
the child's entry point); `run_job` loads the pipeline, and torch with it, in the child only.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..atomic import remove_stale_temp_files
from ..errors import VQVAEError
from ..files import CONFIG, HISTORY, TRAIN_STATE, WEIGHTS

if TYPE_CHECKING:
    from ..train import EventCallback, TrainEvent

log = logging.getLogger(__name__)

MAX_MESSAGE = 500  # characters of an unexpected error shown to the user
TRAINING_NICENESS = 10  # the run yields the CPU to the app's requests (Linux: +10 of 19)


class _Reporter:
    """The child's side of the queue: small plain dicts that the parent folds into RunStatus (a
    `jobs.Progress`, written without importing jobs)."""

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

    def done(self, phase: str, result: Any) -> None:
        pass

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


def _pipeline(job: dict[str, Any], report: _Reporter, stopped: Callable[[], bool]) -> tuple[str, str]:
    """The whole pipeline (jobs.py); returns the end state and its summary."""
    from ..config import train_config_from_dict, vqvae_config_from_dict
    from ..jobs import Job, PriorJob, run

    folder = Path(job["folder"])
    prior = None
    if job["prior_train"] is not None:
        prior_train = train_config_from_dict(job["prior_train"], "prior_train")
        prior = PriorJob(prior_train, classifier_steps=job["classifier_steps"], fit_batch=True)
    outcome = run(
        Job(
            folder,
            vqvae_config_from_dict(job["vqvae"]),
            train_config_from_dict(job["train"]),
            with_umap=job["with_umap"],
            prior=prior,
            finish_when_stopped=True,
        ),
        report,
        stopped,
    )
    if outcome.stopped:
        return "stopped", f"stopped early; {folder.name} was kept. " + _summary(outcome.metrics)
    return "finished", _summary(outcome.metrics)


def run_job(job: dict[str, Any], queue: multiprocessing.Queue, stop: StopEvent) -> None:
    """The whole run in the spawned process; reports its end on the queue, whatever happens."""
    import torch

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


def forget_unfinished(folder: Path) -> None:
    """A run that never saved weights leaves no folder behind to clutter the checkpoint picker."""
    if (folder / WEIGHTS).exists():
        return
    written = (CONFIG, HISTORY, TRAIN_STATE)  # what a run writes before its first weights
    remove_stale_temp_files(folder, (*written, WEIGHTS))
    with contextlib.suppress(OSError):
        for name in written:
            (folder / name).unlink(missing_ok=True)
        folder.rmdir()  # only when empty: nothing this run did not write is ever removed
