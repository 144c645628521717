"""Training runs started from the app: one background process at a time, watched through a queue.

A run does what `python -m vqvae train` and `train-prior` do, in order (jobs.py: the VQ-VAE,
evaluate, analyse, the prior), in a spawned child process (run_child.py), so the app's threads
and torch state never leak into it, and the app itself never imports torch to start one. It trains
in the hidden runs_dir/.NAME.partial and takes its name, runs_dir/NAME, only once the pipeline has
ended: the checkpoint picker offers whole runs only, and a run that fails, is stopped at once or
dies leaves nothing behind. Settings whose checkpoint the app could not load are refused before a
process starts, and the child trains under a memory limit.

The child reports every `TrainEvent` as a small dict on a `multiprocessing.Queue` and reads
a `multiprocessing.Event` as its `should_stop`, so a stop lands after the current step and
the loop saves before it returns; every file is written atomically, so the folder always
loads. The parent side, `RunManager`, folds the queue into a `RunStatus` on each `status()`.
Only whoever started a run (the owner token given to `start`) may stop it.

"spawn" starts a fresh interpreter that re-runs the top level of the app's main script (as
`__mp_main__`), so that script must only define things there and launch under
`if __name__ == "__main__":`.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import math
import multiprocessing
import re
import signal
import threading
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as StopEvent
from pathlib import Path
from queue import Empty
from typing import Any

from ..config import (
    CLASSIFIER_STEPS,
    PRESETS,
    PRIOR_MINUTES,
    SpeechConfig,
    TrainConfig,
    VQVAEConfig,
    preset,
    preset_with,
    prior_training,
    to_dict,
)
from ..errors import DataError, TrainingError
from ..sources import check_source
from .exposure import allowed_source, without_paths
from .forms import number, whole_number
from .run_child import MEMORY_LIMIT, discard, partial_folder, run_job
from .sizes import check_loadable

log = logging.getLogger(__name__)

# The presets a run started from the app may train: one-level image models (a VQ-VAE-2 or a speech model trains
# from the command line)
RUN_PRESETS = tuple(name for name in PRESETS if isinstance(preset(name).vqvae, VQVAEConfig))

STATES = ("idle", "running", "stopping", "finished", "stopped", "failed")
ACTIVE = ("running", "stopping")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_OWNER = 256  # characters of an owner token
NOT_YOURS = "this run was started by another visitor; only they can stop it"


def _whole(name: str, value: Any) -> int | None:
    return None if value is None else whole_number(value, name, TrainingError)


def _number(name: str, value: Any) -> float | None:
    return None if value is None else number(value, name, TrainingError)


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
    prior_minutes: float = PRIOR_MINUTES  # 0: no prior
    classifier_steps: int = CLASSIFIER_STEPS  # 0: no sample-scoring classifier
    with_umap: bool = True  # UMAP beside PCA (numba compiles it first: slow on a first run)

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


def plan_run(settings: RunSettings, data_root: Path | None = None, uploads: Path | None = None) -> RunPlan:
    """The preset with the given fields on top (as the CLI's `train`); bad values raise TrainingError.

    A path source must lie inside `data_root` and outside `uploads` (exposure.py). The data source
    is checked from its file names and headers (sources.py): a missing or empty folder, or a batch
    larger than all its images, is refused before any process starts, and so is a model whose
    checkpoint the app could not load (check_loadable). No message shows where the data folder is
    on the server.
    """
    data = settings.data and allowed_source(settings.data, data_root, uploads)
    if settings.preset in PRESETS and settings.preset not in RUN_PRESETS:
        kind = "a speech model" if isinstance(preset(settings.preset).vqvae, SpeechConfig) else "a VQ-VAE-2"
        raise TrainingError(
            f"preset {settings.preset!r} is {kind}, which trains from the command line: "
            f"python -m vqvae train --preset {settings.preset} --out FOLDER"
        )
    try:
        chosen = preset_with(
            settings.preset,
            model={},
            quantizer={name: getattr(settings, name) for name in ("num_embeddings", "embedding_dim", "update")},
            train={"data": data}
            | {name: getattr(settings, name) for name in ("learning_rate", "batch_size", "seed", "steps", "minutes")},
        )
        config, train = chosen.vqvae, chosen.train
        prior_train = None
        if settings.prior_minutes > 0:
            prior_train = prior_training(train.data, train.seed, minutes=settings.prior_minutes)
        check_loadable(config, prior_train is not None)
        check_source(train.data, train.batch_size)
    except ValueError as error:
        raise TrainingError(f"bad setting: {error}") from error
    except DataError as error:
        names = {data_root: DATA_FOLDER} if data_root else {}
        raise TrainingError(f"bad data: {without_paths(str(error), names)}") from error
    return RunPlan(config, train, prior_train)


DATA_FOLDER = "<data folder>"  # how messages to a visitor name the data folder


@dataclass
class RunStatus:
    """A snapshot of the one run a RunManager owns, for the Training page to draw."""

    state: str = "idle"  # one of STATES
    name: str = ""
    folder: Path | None = None  # runs_dir / name, where the run is once it has ended and was kept
    phase: str = ""  # one of jobs.PHASES; "" when idle
    progress: float = 0.0  # 0..1 of the current phase
    step: int = 0  # training step of the current (or last) training phase
    elapsed_s: float = 0.0  # training time of the current (or last) training phase
    vqvae_history: list[dict[str, float]] = field(default_factory=list)  # "log" rows: loss, perplexity, codes_used
    prior_history: list[dict[str, float]] = field(default_factory=list)  # "log" rows: loss, bits_per_latent
    message: str = ""  # what is going on; the error on failure; a one-line summary at the end
    with_prior: bool = False  # the run trains a prior after its VQ-VAE
    stopped_at: tuple[str, float] | None = None  # the phase and its progress when a stop was asked
    owned_by_you: bool = False  # the asker may stop it: their owner token started it, or it was started without one

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


# ---------------------------------------------------------------- the parent side


@dataclass
class _Run:
    status: RunStatus
    process: BaseProcess
    queue: multiprocessing.Queue | None  # None once the run has ended: see _end
    stop: StopEvent | None
    partial: Path  # where it trains: partial_folder(status.folder)
    owner: str | None  # the token of whoever started it; None: anyone may stop it
    names: dict[Path, str] = field(default_factory=dict)  # folders a visitor sees by name, not by path
    forced: bool = False


class RunManager:
    """Owns at most one background training run writing into `runs_dir`.

    Thread-safe: the app may call status() from a timer while a button calls stop().
    """

    def __init__(
        self,
        runs_dir: str | Path,
        data_root: Path | None = None,
        uploads: Path | None = None,
        memory_bytes: int | None = MEMORY_LIMIT,
    ):
        """runs_dir: where runs are written; data_root: the folder path sources must lie in (None: the
        named sources only); uploads: a folder no run may read (the app's upload folder);
        memory_bytes: the address space each run's process may map (None: no limit)."""
        self.runs_dir, self.data_root, self.uploads = Path(runs_dir), data_root, uploads
        self.memory_bytes = memory_bytes
        # the folders a visitor sees by name in a run's messages, never by their server paths
        self.names = {self.runs_dir: "runs"} | ({data_root: DATA_FOLDER} if data_root else {})
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._run: _Run | None = None

    def start(self, settings: RunSettings, owner: str | None = None) -> None:
        """Validate, then start the run in a background process; raises TrainingError if it cannot.

        owner: a token of whoever starts it (e.g. one per browser); only a stop that gives the same
        token ends the run. None: anyone may stop it.
        """
        with self._lock:
            _check_owner(owner)
            current = self._refresh()
            if current is not None and current.status.active:
                raise TrainingError(f"a training run is already going: {current.status.name}")
            plan = plan_run(settings, self.data_root, self.uploads)
            folder = self.runs_dir / settings.name
            partial = partial_folder(folder)
            taken = TrainingError(f"a run named {settings.name} already exists; choose another run name")
            if folder.exists() or folder.is_symlink():
                raise taken
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            try:
                partial.mkdir()  # exclusive: this run's own folder, so all it will hold is the run's
            except FileExistsError:
                raise taken from None
            job = {
                "folder": str(folder),
                "partial": str(partial),
                "vqvae": to_dict(plan.vqvae),
                "train": to_dict(plan.train),
                "prior_train": None if plan.prior_train is None else to_dict(plan.prior_train),
                "classifier_steps": settings.classifier_steps,
                "with_umap": bool(settings.with_umap),
                "memory_bytes": self.memory_bytes,
            }
            queue, stop = self._context.Queue(), self._context.Event()
            process = self._context.Process(
                target=run_job, args=(job, queue, stop), name=f"vqvae-run-{settings.name}", daemon=True
            )
            status = RunStatus("running", settings.name, folder, "vqvae", message="starting the training process")
            status.with_prior = plan.prior_train is not None
            try:
                process.start()
            except BaseException:
                discard(partial)
                raise
            self._run = _Run(status, process, queue, stop, partial, owner, self.names)
            log.info("started training run %s (pid %s)", folder, process.pid)

    def stop(self, force: bool = False, *, owner: str | None = None) -> None:
        """Ask the run to stop after its current step (it saves, is evaluated and analysed, and is kept).

        force=True ends the process at once instead, and its folder is removed. Only the owner token
        the run was started with stops it (any, when it was started without one); another raises
        TrainingError.
        """
        with self._lock:
            _check_owner(owner)
            run = self._refresh()
            if run is None or not run.status.active:
                return
            if not _owns(run, owner):
                raise TrainingError(NOT_YOURS)
            self._stop(run, force)

    def close(self) -> None:
        """End whatever run is going at once, whoever started it (the app shutting down)."""
        with self._lock:
            run = self._refresh()
            if run is not None and run.status.active:
                self._stop(run, force=True)

    def _stop(self, run: _Run, force: bool) -> None:
        run.stop.set()
        if run.status.state != "stopping":
            run.status.stopped_at = (run.status.phase, run.status.progress)
        run.status.state = "stopping"
        if force:
            run.forced = True
            run.process.terminate()
            run.process.join(timeout=5)
            if run.process.is_alive():
                run.process.kill()
                run.process.join(timeout=5)
            self._refresh()
        log.info("asked training run %s to stop%s", run.status.folder, " at once" if force else "")

    def status(self, owner: str | None = None) -> RunStatus:
        """A snapshot of the run: drains what the child has reported since the last call.
        `owned_by_you` says whether `owner` may stop it."""
        with self._lock:
            run = self._refresh()
            if run is None:
                return RunStatus()
            return dataclasses.replace(
                run.status,
                vqvae_history=list(run.status.vqvae_history),
                prior_history=list(run.status.prior_history),
                owned_by_you=_owns(run, owner),
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


def _check_owner(owner: Any) -> None:
    if owner is not None and not (isinstance(owner, str) and 0 < len(owner) <= MAX_OWNER):
        raise TrainingError(f"an owner token must be text of 1 to {MAX_OWNER} characters")


def _owns(run: _Run, owner: str | None) -> bool:
    """Whether `owner` may stop the run: the token it was started with (compared in constant time)."""
    if run.owner is None:
        return True
    return isinstance(owner, str) and hmac.compare_digest(owner.encode(), run.owner.encode())


def _gone_without_a_word(run: _Run) -> None:
    """The child ended (killed, out of memory, stopped at once) before it could report its end."""
    folder, phase = run.status.folder, run.status.phase
    if folder.is_dir() and not run.partial.exists():  # it took its name, then died before saying so
        _end(run, "finished", f"{folder.name} was saved; the training process ended before its summary came")
        return
    discard(run.partial)
    if run.forced:
        _end(run, "stopped", f"stopped at once in the {phase} phase; nothing was kept")
    else:
        _end(
            run,
            "failed",
            f"the training process ended unexpectedly ({_how(run.process.exitcode)}) in the "
            f"{phase} phase; nothing was kept",
        )


def _how(exitcode: int | None) -> str:
    """How a process that gave no word ended, in words."""
    if exitcode is None or exitcode >= 0:
        return f"exit code {exitcode}"
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    if name == "SIGKILL":
        return "killed by SIGKILL, as the system ends a process when memory runs out"
    return f"ended by {name}"


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
        else:
            discard(run.partial)  # the child removes it; this is in case it died doing so
        _end(run, message["state"], message["message"])


def _end(run: _Run, state: str, message: str) -> None:
    run.status.state, run.status.message = state, without_paths(message, run.names)
    level = logging.WARNING if state == "failed" else logging.INFO
    log.log(level, "training run %s %s: %s", run.status.name, state, message)
    run.process.join(timeout=0)  # reaps the child if it has exited
    run.queue.close()
    # Each holds named semaphores, released when it is collected: dropped now, not at the app's exit
    # (a server ended by a signal never gets there, and the system keeps them).
    run.queue = run.stop = None
