"""The child's side of a training run started from the app (runs.py is the parent's side).

In its spawned process the run goes through the whole pipeline (jobs.py: the VQ-VAE, evaluate,
analyse, the prior and its classifier, evaluate again) into a hidden folder, runs_dir/.NAME.partial,
renamed to runs_dir/NAME once the pipeline has ended, so the checkpoint picker (which lists no hidden
folder) only ever offers a whole run. A run that fails is removed whole. Every `TrainEvent` goes to the
parent as a small dict on a `multiprocessing.Queue`, and a `multiprocessing.Event` is the loops'
`should_stop`. Importing this module loads no torch (the app imports it to name the child's entry
point); `run_job` loads the pipeline, and torch with it, in the child only, under a memory limit.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import multiprocessing
import os
import shutil
import signal
import stat
from collections.abc import Callable
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import TrainingError, VQVAEError
from ..files import PARTIAL_SUFFIX

try:
    import resource
except ImportError:  # Windows: no address-space limit
    resource = None

if TYPE_CHECKING:
    from ..train import EventCallback, TrainEvent

log = logging.getLogger(__name__)

MAX_MESSAGE = 500  # characters of an unexpected error shown to the user
TRAINING_NICENESS = 10  # the run yields the CPU to the app's requests (Linux: +10 of 19)
# The child's address space (RLIMIT_AS), set before torch loads. Virtual, not resident: torch, its
# libraries and each thread's malloc arena map far more than they touch. Measured as VmPeak of a real
# child of the app (gradio imported with the app's main script, then torch): the mnist preset with its
# prior, classifier and UMAP peaked at 2.1 GiB (1.2 GiB resident); the largest run the app accepts,
# 2 GiB of images (sources.MAX_DATASET_BYTES), at 8.2 GiB, in its prior phase. A run that would grow
# past this fails saying so, instead of taking the machine's memory from the app and everyone on it.
MEMORY_LIMIT = 12 * 1024**3
OUT_OF_MEMORY = ("can't allocate memory", "not enough memory", "out of memory")  # torch's CPU allocator


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
    """The whole pipeline (jobs.py) in the partial folder, which then takes the run's name; returns
    the end state and its summary."""
    from ..config import train_config_from_dict, vqvae_config_from_dict
    from ..jobs import Job, PriorJob, run

    partial, folder = Path(job["partial"]), Path(job["folder"])
    prior = None
    if job["prior_train"] is not None:
        prior_train = train_config_from_dict(job["prior_train"], "prior_train")
        prior = PriorJob(prior_train, classifier_steps=job["classifier_steps"], fit_batch=True)
    outcome = run(
        Job(
            partial,
            vqvae_config_from_dict(job["vqvae"]),
            train_config_from_dict(job["train"]),
            with_umap=job["with_umap"],
            prior=prior,
            finish_when_stopped=True,
        ),
        report,
        stopped,
    )
    publish(partial, folder)
    if outcome.stopped:
        return "stopped", f"stopped early; {folder.name} was kept. " + _summary(outcome.metrics)
    return "finished", _summary(outcome.metrics)


def run_job(job: dict[str, Any], queue: multiprocessing.Queue, stop: StopEvent) -> None:
    """The whole run in the spawned process; reports its end on the queue, whatever happens.

    job["memory_bytes"] limits the process's address space (None: no limit); a run that meets it
    fails with a message that says so, and like every failed run leaves no folder behind.
    """
    limit = job.get("memory_bytes")
    limit_memory(limit)  # before torch maps its libraries, so they count too
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the app's terminal ends the app, which ends us
    os.nice(TRAINING_NICENESS)  # the cores go to a request first when one comes in
    report = _Reporter(queue)
    try:
        import torch

        torch.set_num_threads(1)  # the app's own requests keep a core
        report.end(*_pipeline(job, report, stop.is_set))
    except Exception as error:
        discard(Path(job["partial"]))
        report.end("failed", _failure(error, limit, job["folder"]))
    finally:
        queue.close()
        queue.join_thread()  # the last message is in the pipe before the process ends


def limit_memory(limit: int | None) -> None:
    """Cap this process's address space at `limit` bytes (never above a hard limit already set)."""
    if resource is None or not limit:
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _failure(error: Exception, limit: int | None, folder: str) -> str:
    """What the visitor reads when the run failed with `error`."""
    if out_of_memory(error):
        within = f" (limit {limit / 1024**3:g} GiB)" if limit and resource is not None else ""
        return f"ran out of memory{within}; try a smaller K, D, batch size or data source"
    if isinstance(error, VQVAEError | ValueError):
        return str(error)
    log.exception("training run %s failed", folder)
    return f"unexpected error ({type(error).__name__}): {error}"[:MAX_MESSAGE]


def out_of_memory(error: BaseException | None) -> bool:
    """Whether `error`, or an error it was raised from, is an allocation that failed."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, MemoryError):
            return True
        if isinstance(error, OSError) and error.errno == errno.ENOMEM:
            return True
        if isinstance(error, RuntimeError) and any(words in str(error) for words in OUT_OF_MEMORY):
            return True
        error = error.__cause__ or error.__context__
    return False


def partial_folder(folder: Path) -> Path:
    """Where the run that ends as `folder` trains: runs_dir/.NAME.partial."""
    return folder.with_name(f".{folder.name}{PARTIAL_SUFFIX}")


def publish(partial: Path, folder: Path) -> None:
    """The ended run takes its name (one rename, then the runs folder synced), so the picker offers it."""
    if folder.exists() or folder.is_symlink():
        raise TrainingError(f"cannot save the run as {folder.name}: something of that name appeared in its folder")
    os.rename(partial, folder)
    with contextlib.suppress(OSError):  # a courtesy to a power cut, not a reason to fail the run
        directory = os.open(folder.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def discard(partial: Path) -> None:
    """Remove an unfinished run's folder whole.

    Only a hidden `.NAME.partial` folder is ever removed: the run manager made it (an exclusive
    mkdir) for this run, so all it holds is the run's. It must be a real folder, not a link, and
    nothing in it is followed: a link inside is removed as a link (shutil.rmtree).
    """
    if not (partial.name.startswith(".") and partial.name.endswith(PARTIAL_SUFFIX)):
        raise ValueError(f"{partial} is not a run's partial folder")
    try:
        mode = partial.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        log.warning("not removing %s: not a folder", partial)
        return
    shutil.rmtree(partial, ignore_errors=True)
    if partial.exists():
        log.warning("could not remove all of %s", partial)
