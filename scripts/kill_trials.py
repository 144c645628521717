"""Kill a real training process at random moments and check the folder it leaves behind.

Each trial starts `python -m vqvae train` (or `train-prior`) on the digits-tiny preset, saving
every other step so that kills land in the middle of saves too, sends it SIGKILL after a delay
drawn from --seed, and checks what is left. (The digits are read from an .npz copy, the same
images, so that each process starts without importing scikit-learn.)

  saved       the kill came after a complete save: the train state restores a model and its
              optimiser, and the weights, when written, load (load_checkpoint, load_prior for
              the prior) and are not ahead of the train state;
  not saved   the kill came before the first complete save: there are no weights, and the
              loader refuses the folder with our CheckpointError (nothing it half-accepts).

A weights file that does not load, weights without their train state, or a loader failing any
other way counts as corrupt. Then `--resume` (or, when the kill came before the run's settings
were written, the first command again) must run to the end, and the folder must load, hold no
temp file, and have the history, the weights and the train state of an uninterrupted run, bit
for bit. The killed runs and the uninterrupted one are processes of their own; the resume goes
through the same command-line entry point (`vqvae.__main__.main`) inside this process, which has
torch loaded already, so a trial costs one interpreter start, not two.

The kill moments are stratified over the phase where files are written: trial i of n waits for
the first file of its run to appear (the settings, or the prior's code grids), then for a random
moment of the i-th n-th of the time the uninterrupted run took from there to its end. A write
takes a millisecond or so, so few of those moments fall inside one; with --at-writes, trial i
is killed instead the moment a temp file is seen to appear for the k-th time, k drawn from the
i-th n-th of the writes the uninterrupted run made, so most kills land inside a write.

    python scripts/kill_trials.py [--trials 50] [--seed 0] [--kind train train-prior] [--at-writes] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vqvae import checkpoint as ckpt  # noqa: E402
from vqvae.__main__ import main as vqvae_main  # noqa: E402
from vqvae.config import preset  # noqa: E402
from vqvae.errors import CheckpointError  # noqa: E402
from vqvae.model import VQVAE  # noqa: E402
from vqvae.prior import GatedPixelCNN  # noqa: E402

PRESET = "digits-tiny"
STEPS = 300  # VQ-VAE steps of each run: 150 saves, most of the run after its first step
PRIOR_STEPS = 30
SAVE_EVERY = 2
COMMAND_TIMEOUT_S = 300


def vqvae_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "vqvae", *args]


def run_in_process(command: list[str]) -> tuple[int, str]:
    """`python -m vqvae ...` through its own entry point here; (exit status, what it wrote to stderr)."""
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        status = vqvae_main(command[3:])
    return status, stderr.getvalue()


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*.tmp")) if folder.is_dir() else []


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.read_tensors(path)[0]


def history_rows(path: Path) -> list[dict]:
    """The history without its wall-clock column, which no two runs share."""
    return [{k: v for k, v in row.items() if k != "time_s"} for row in ckpt.read_json(path)]


def digits_npz(folder: Path) -> str:
    """The digits-tiny preset's data as an .npz source: the same images and labels, read without scikit-learn."""
    import numpy as np

    from vqvae.data import load_source

    digits = load_source(preset(PRESET).train.data)
    path = folder / "digits.npz"
    np.savez(path, images=digits.images.numpy(), labels=digits.labels.numpy())
    return f"npz:{path}"


class VQVAERun:
    """`python -m vqvae train` into a folder of its own."""

    name = "train"
    weights, state, history = ckpt.WEIGHTS, ckpt.TRAIN_STATE, ckpt.HISTORY

    def __init__(self, data: str, steps: int = STEPS, save_every: int = SAVE_EVERY):
        self.data, self.steps, self.save_every = data, steps, save_every

    def prepare(self, folder: Path) -> None:
        folder.parent.mkdir(parents=True, exist_ok=True)  # the command makes the folder itself

    def start(self, folder: Path) -> list[str]:
        steps, every = str(self.steps), str(self.save_every)
        return vqvae_command("train", "--preset", PRESET, "--data", self.data, "--out", str(folder),
                             "--steps", steps, "--save-every", every, "--no-eval")  # fmt: skip

    def resume(self, folder: Path) -> list[str]:
        return vqvae_command("train", "--out", str(folder), "--resume", "--no-eval")

    def has_settings(self, folder: Path) -> bool:
        return (folder / ckpt.CONFIG).is_file()

    def load_weights(self, folder: Path) -> int:
        return ckpt.load_checkpoint(folder).step

    def load_state(self, folder: Path) -> int:
        model = VQVAE(ckpt.load_config(folder).vqvae)
        return ckpt.load_train_state(folder, model, torch.optim.Adam(model.parameters())).step


class PriorRun:
    """`python -m vqvae train-prior` on a copy of a trained VQ-VAE folder (classifier included)."""

    name = "train-prior"
    weights, state, history = ckpt.PRIOR, ckpt.PRIOR_STATE, ckpt.PRIOR_HISTORY

    def __init__(self, base: Path, steps: int = PRIOR_STEPS, save_every: int = SAVE_EVERY):
        self.base, self.steps, self.save_every = base, steps, save_every

    def prepare(self, folder: Path) -> None:
        shutil.copytree(self.base, folder)

    def start(self, folder: Path) -> list[str]:
        steps, every = str(self.steps), str(self.save_every)
        return vqvae_command("train-prior", str(folder), "--steps", steps, "--save-every", every)

    def resume(self, folder: Path) -> list[str]:
        return vqvae_command("train-prior", str(folder), "--resume")

    def has_settings(self, folder: Path) -> bool:
        return "prior" in ckpt.read_config(folder)

    def load_weights(self, folder: Path) -> int:
        ckpt.load_checkpoint(folder)  # the VQ-VAE beside the prior must load as ever
        ckpt.load_prior(folder)
        return int(ckpt.read_header(folder / ckpt.PRIOR)["__metadata__"]["step"])

    def load_state(self, folder: Path) -> int:
        model = GatedPixelCNN(ckpt.read_prior_settings(folder)[0])
        optimizer = torch.optim.Adam(model.parameters())
        return ckpt.load_train_state(folder, model, optimizer, ckpt.PRIOR_STATE).step


def make_prior_base(folder: Path, data: str) -> Path:
    """A trained digits-tiny VQ-VAE and its sample-scoring classifier, so `train-prior` trains only the prior."""
    from vqvae.data import load_split
    from vqvae.train import train_classifier, train_vqvae

    chosen = preset(PRESET)
    train_vqvae(chosen.vqvae, dataclasses.replace(chosen.train, data=data, steps=20), folder)
    train_classifier(folder, load_split(data, 8, 1), steps=10)
    return folder


@dataclass
class Reference:
    """An uninterrupted run: what every trial must end with, and when it wrote its first file."""

    weights: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor]
    history: list[dict]
    first_write_s: float  # from the start of the process
    end_s: float
    writes: int  # temp files seen to appear, about one per file written (0: not watched)


def listing(folder: Path) -> set[str]:
    return set(os.listdir(folder)) if folder.is_dir() else set()


def wait_for_first_write(process: subprocess.Popen, folder: Path, before: set[str]) -> float:
    """Seconds from now until a new entry shows in `folder` (or the process ends)."""
    started = time.monotonic()
    while process.poll() is None and not listing(folder) - before:
        if time.monotonic() - started > COMMAND_TIMEOUT_S:
            process.kill()
            raise RuntimeError(f"{folder}: no file written in {COMMAND_TIMEOUT_S} s")
        time.sleep(0.001)
    return time.monotonic() - started


def wait_for_writes(process: subprocess.Popen, folder: Path, count: float) -> int:
    """Watch `folder` until the `count`-th temp file appears (or the process ends); how many were seen.

    A busy loop: a temp file lives about a millisecond, and a sleep would miss most of them.
    """
    seen, showing = 0, set()
    while seen < count and process.poll() is None:
        try:
            temps = {name for name in os.listdir(folder) if name.endswith(".tmp")}
        except FileNotFoundError:
            temps = set()
        seen += len(temps - showing)
        showing = temps
    return seen


def reference_run(run: VQVAERun | PriorRun, folder: Path, count_writes: bool) -> Reference:
    """The uninterrupted run. count_writes: watch its writes as --at-writes trials do (which slows it)."""
    run.prepare(folder)
    log = folder.parent / f"{folder.name}.log"
    started = time.monotonic()
    with open(log, "w") as stderr:
        process = subprocess.Popen(run.start(folder), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
        first_write = wait_for_first_write(process, folder, listing(folder))
        writes = 1 + wait_for_writes(process, folder, float("inf")) if count_writes else 0
        process.wait(timeout=COMMAND_TIMEOUT_S)
    end = time.monotonic() - started
    if process.returncode != 0:
        raise RuntimeError(f"the reference run failed: {log.read_text()[-2000:]}")
    return Reference(
        tensors(folder / run.weights), tensors(folder / run.state), history_rows(folder / run.history),
        first_write, end, writes,
    )  # fmt: skip


@dataclass
class Trial:
    kind: str
    delay_s: float | None  # from the first write of the run
    at_write: int | None = None  # or: killed as the at_write-th temp file appeared
    finished_first: bool = False  # the run had ended before the kill was sent
    saved: bool = False  # a complete save was there after the kill
    mid_write: bool = False  # a temp file was left: the kill came in the middle of a write
    saved_step: int | None = None  # the train state's step after the kill
    recovery: str = ""  # "resume" or "start again"
    problem: str = ""  # "" when every check passed; else "corrupt: ...", "unresumable: ..." or "different: ..."


def inspect(run: VQVAERun | PriorRun, folder: Path, trial: Trial) -> None:
    """What the kill left: a complete save, nothing, or (a failure) a corrupt folder."""
    trial.mid_write = bool(temp_files(folder))
    state_step = weights_step = None
    try:
        if (folder / run.state).exists():
            state_step = run.load_state(folder)
        if (folder / run.weights).exists():
            weights_step = run.load_weights(folder)
        else:
            try:
                run.load_weights(folder)
                trial.problem = "corrupt: the loader accepted a folder without weights"
            except CheckpointError:
                pass  # refused with our error: nothing half-accepted
    except CheckpointError as error:
        trial.problem = f"corrupt: {error}"
    except Exception as error:  # anything but our own error is a loader failure too
        trial.problem = f"corrupt: the loader raised {type(error).__name__}: {error}"
    if not trial.problem and weights_step is not None and (state_step is None or weights_step > state_step):
        trial.problem = f"corrupt: weights of step {weights_step} with a train state of step {state_step}"
    trial.saved, trial.saved_step = state_step is not None, state_step


def recover(run: VQVAERun | PriorRun, folder: Path, trial: Trial) -> None:
    """Resume (or start again), then the folder must be the uninterrupted run's, bit for bit."""
    resumable = folder.is_dir() and run.has_settings(folder)
    trial.recovery = "resume" if resumable else "start again"
    status, stderr = run_in_process(run.resume(folder) if resumable else run.start(folder))
    if status != 0:
        trial.problem = f"unresumable: {trial.recovery} exited {status}: {stderr.strip()[-500:]}"


def compare(run: VQVAERun | PriorRun, folder: Path, reference: Reference, trial: Trial) -> None:
    try:
        step = run.load_weights(folder)
        weights, state = tensors(folder / run.weights), tensors(folder / run.state)
        history = history_rows(folder / run.history)
    except CheckpointError as error:
        trial.problem = f"different: the resumed folder does not load: {error}"
        return
    differences = [
        f"step {step}, not {run.steps}" if step != run.steps else "",
        f"temp files left: {temp_files(folder)}" if temp_files(folder) else "",
        history_difference(history, reference.history),
        "weights" if not same(weights, reference.weights) else "",
        "train state" if not same(state, reference.state) else "",
    ]
    if any(differences):
        trial.problem = "different: " + ", ".join(d for d in differences if d)


def history_difference(history: list[dict], reference: list[dict]) -> str:
    """'' when equal; else where the two first part."""
    if history == reference:
        return ""
    first = next((a.get("step") for a, b in zip(history, reference) if a != b), None)
    steps = [row.get("step") for row in history]
    return f"history (first differs at step {first}; steps {steps[:3]}...{steps[-2:]})"


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


def kill_trial(
    run: VQVAERun | PriorRun, folder: Path, reference: Reference, delay_s: float | None, at_write: int | None = None
) -> Trial:
    """Kill a run `delay_s` after its first write, or as its `at_write`-th temp file appears; check, resume."""
    trial = Trial(run.name, None if delay_s is None else round(delay_s, 3), at_write)
    run.prepare(folder)
    before = listing(folder)
    process = subprocess.Popen(run.start(folder), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if at_write is None:
        wait_for_first_write(process, folder, before)
    else:
        wait_for_writes(process, folder, at_write)
    try:
        process.wait(timeout=delay_s or 0.0)
        trial.finished_first = True
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
    inspect(run, folder, trial)
    if not trial.problem:
        recover(run, folder, trial)
    if not trial.problem:
        compare(run, folder, reference, trial)
    return trial


@dataclass
class Report:
    trials: int = 0
    saved: int = 0  # kills that came after at least one complete save (and before the end)
    mid_write: int = 0  # kills that left a temp file: they came in the middle of a write
    finished_first: int = 0
    restarted: int = 0  # recovered by the first command again: the kill came before any settings
    corrupt: int = 0
    unresumable: int = 0
    different: int = 0  # resumed, but not bit for bit the uninterrupted run
    wall_s: float = 0.0
    windows_s: dict[str, list[float]] = field(default_factory=dict)  # reference: [first write, then to the end]
    writes: dict[str, int] = field(default_factory=dict)  # temp files the reference run was seen to make
    problems: list[str] = field(default_factory=list)
    trial_list: list[Trial] = field(default_factory=list)

    def add(self, trial: Trial) -> None:
        self.trials += 1
        self.saved += trial.saved and not trial.finished_first
        self.mid_write += trial.mid_write
        self.finished_first += trial.finished_first
        self.restarted += trial.recovery == "start again"
        for kind in ("corrupt", "unresumable", "different"):
            if trial.problem.startswith(kind):
                setattr(self, kind, getattr(self, kind) + 1)
        if trial.problem:
            moment = f"{trial.delay_s} s" if trial.at_write is None else f"write {trial.at_write}"
            self.problems.append(f"{trial.kind} killed at {moment}: {trial.problem}")
        self.trial_list.append(trial)


def stratified_delays(count: int, low: float, high: float, rng: random.Random) -> list[float]:
    width = (high - low) / count
    delays = [low + (i + rng.random()) * width for i in range(count)]
    rng.shuffle(delays)
    return delays


def run_trials(
    trials: int,
    seed: int,
    kinds: tuple[str, ...] = ("train",),
    steps: int = STEPS,
    at_writes: bool = False,
    workdir: Path | None = None,
) -> Report:
    """`trials` kill trials, shared between `kinds` in turn; every check's outcome in one Report.

    steps: of each VQ-VAE run (the prior's is PRIOR_STEPS); a save every SAVE_EVERY steps.
    at_writes: kill as a temp file appears, not at a random moment.
    """
    started = time.monotonic()
    rng = random.Random(seed)
    report = Report()
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        scratch = Path(scratch)
        data = digits_npz(scratch)
        runs: dict[str, VQVAERun | PriorRun] = {"train": VQVAERun(data, steps)}
        if "train-prior" in kinds:
            runs["train-prior"] = PriorRun(make_prior_base(scratch / "prior-base", data))
        for kind in kinds:
            run = runs[kind]
            reference = reference_run(run, scratch / f"{kind}-reference", at_writes)
            window = reference.end_s - reference.first_write_s
            report.windows_s[kind] = [round(reference.first_write_s, 3), round(window, 3)]
            report.writes[kind] = reference.writes
            count = trials // len(kinds) + (kinds.index(kind) < trials % len(kinds))
            high = reference.writes + 1 if at_writes else window
            for i, moment in enumerate(stratified_delays(count, 1.0 if at_writes else 0.0, high, rng)):
                folder = scratch / f"{kind}-{i}" / "run"
                if at_writes:
                    report.add(kill_trial(run, folder, reference, None, int(moment)))
                else:
                    report.add(kill_trial(run, folder, reference, moment))
    report.wall_s = round(time.monotonic() - started, 1)
    return report


def summary(report: Report) -> str:
    lines = [
        f"trials {report.trials}: {report.saved} killed after a complete save "
        f"({report.mid_write} in the middle of a write), {report.trials - report.saved - report.finished_first} "
        f"before any, {report.finished_first} after the run had ended; {report.restarted} started again "
        f"rather than resumed",
        f"corrupt {report.corrupt}, unresumable {report.unresumable}, "
        f"not bit for bit the uninterrupted run {report.different}",
        f"uninterrupted runs (first write after s, then s to the end): {report.windows_s}, "
        f"writes seen {report.writes}; wall time {report.wall_s} s",
    ]
    return "\n".join(lines + report.problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50, help="how many kills in all [default: 50]")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays [default: 0]")
    parser.add_argument(
        "--kind", nargs="+", choices=["train", "train-prior"], default=["train"], help="which commands to kill"
    )
    parser.add_argument("--steps", type=int, default=STEPS, help=f"steps of each VQ-VAE run [default: {STEPS}]")
    parser.add_argument("--at-writes", action="store_true", help="kill as a temp file appears, not at a random moment")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    args = parser.parse_args()
    report = run_trials(args.trials, args.seed, tuple(args.kind), args.steps, args.at_writes)
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
    else:
        print(summary(report))
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
