"""Ctrl-C and SIGTERM to `python -m vqvae train` and `train-prior` (vqvae/stopping.py).

The command stops after the current step, saves, prints one line, and exits with 128 + the
signal's number; resumed to the same length, the run ends with the weights and train state of
an uninterrupted one, bit for bit. The signalled run is a process of its own; the resume and
the uninterrupted run go through the same entry point, `vqvae.__main__.main`, in this one.
"""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.__main__ import main
from vqvae.config import preset
from vqvae.data import load_source, load_split
from vqvae.train import train_classifier, train_vqvae

ROOT = Path(__file__).resolve().parents[1]
STEPS = 120
SAVE_EVERY = "25"
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The digits as an .npz source: the same images, and a process that starts without scikit-learn."""
    digits = load_source("digits")
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, images=digits.images.numpy(), labels=digits.labels.numpy())
    return f"npz:{path}"


def signalled(args: list[str], first_save: Path, signums: list[int], logs: Path) -> tuple[int, str, str]:
    """Run `python -m vqvae ARGS`, send the signals once `first_save` exists; (status, stdout, stderr).

    The process computes with as many threads as this one, where its run is resumed and compared:
    a sum split over another number of threads rounds differently (the app's tests, in this same
    process, may have set one thread).
    """
    env = os.environ | {"OMP_NUM_THREADS": str(torch.get_num_threads())}
    with open(logs / "stdout", "w+") as stdout, open(logs / "stderr", "w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "vqvae", *args], cwd=ROOT, env=env, stdout=stdout, stderr=stderr
        )
        deadline = time.monotonic() + 120
        while not first_save.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        for signum in signums:
            process.send_signal(signum)
        status = process.wait(timeout=120)
        stdout.seek(0), stderr.seek(0)
        return status, stdout.read(), stderr.read()


def same_tensors(a: Path, b: Path) -> bool:
    x, y = ckpt.read_tensors(a)[0], ckpt.read_tensors(b)[0]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def history(folder: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in ckpt.read_json(folder / ckpt.HISTORY)]


def saved_step(path: Path) -> int:
    return int(ckpt.read_header(path)["__metadata__"]["step"])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_training_with_a_save_that_resumes_bit_for_bit(tmp_path, data, signum):
    out, straight = tmp_path / "run", tmp_path / "straight"
    args = ["--preset", "digits-tiny", "--data", data, "--steps", str(STEPS), "--save-every", SAVE_EVERY, "--no-eval"]
    status, stdout, stderr = signalled(["train", "--out", str(out), *args], out / ckpt.TRAIN_STATE, [signum], tmp_path)

    assert status == 128 + signum, stderr
    assert "Traceback" not in stderr and "error" not in stderr
    step = ckpt.load_checkpoint(out).step
    assert 25 <= step < STEPS and saved_step(out / ckpt.TRAIN_STATE) == step
    assert stdout.startswith(f"stopped by {NAMES[signum]}: saved {out} at step {step} (")
    assert stdout.strip().endswith(f"Continue with: python -m vqvae train --out {out} --resume")

    assert main(["train", "--out", str(out), "--resume", "--no-eval"]) == 0
    assert main(["train", "--out", str(straight), *args]) == 0
    for name in (ckpt.WEIGHTS, ckpt.TRAIN_STATE):
        assert same_tensors(out / name, straight / name), name
    assert history(out) == history(straight)


def test_a_second_ctrl_c_ends_at_once_and_the_folder_keeps_its_last_save(tmp_path, data):
    out = tmp_path / "run"
    args = ["train", "--preset", "digits-tiny", "--data", data, "--out", str(out), "--steps", str(STEPS),
            "--save-every", "5", "--no-eval"]  # fmt: skip
    status, stdout, stderr = signalled(args, out / ckpt.TRAIN_STATE, [signal.SIGINT, signal.SIGINT], tmp_path)
    assert status == 130 and "Traceback" not in stderr
    assert "interrupted" in stderr or stdout.startswith("stopped by Ctrl-C")
    assert not list(out.glob(".*.tmp"))
    assert main(["train", "--out", str(out), "--resume", "--no-eval"]) == 0
    assert ckpt.load_checkpoint(out).step == STEPS


def test_sigterm_stops_the_prior_with_a_save_that_resumes_bit_for_bit(tmp_path, data):
    chosen = preset("digits-tiny")
    base = tmp_path / "base"
    train_vqvae(chosen.vqvae, dataclasses.replace(chosen.train, data=data, steps=10), base)
    train_classifier(base, load_split(data, 8, 1), steps=5)  # so the command trains the prior only
    out, straight = shutil.copytree(base, tmp_path / "run"), shutil.copytree(base, tmp_path / "straight")
    args = ["--steps", "150", "--save-every", SAVE_EVERY, "--layers", "2", "--hidden", "16"]
    status, stdout, stderr = signalled(
        ["train-prior", str(out), *args], out / ckpt.PRIOR_STATE, [signal.SIGTERM], tmp_path
    )

    assert status == 143, stderr
    assert "Traceback" not in stderr
    step = saved_step(out / ckpt.PRIOR)
    assert 25 <= step < 150 and saved_step(out / ckpt.PRIOR_STATE) == step
    assert stdout.startswith(f"stopped by SIGTERM: saved the prior in {out} at step {step} (")
    assert stdout.strip().endswith(f"Continue with: python -m vqvae train-prior {out} --resume")
    ckpt.load_prior(out)

    assert main(["train-prior", str(out), "--resume"]) == 0
    assert main(["train-prior", str(straight), *args]) == 0
    for name in (ckpt.PRIOR, ckpt.PRIOR_STATE):
        assert same_tensors(out / name, straight / name), name


def test_a_stop_while_the_classifier_trains_ends_it_and_leaves_it_unused(tmp_path, data):
    """A stop reaches the classifier's loop too (it runs after the prior); a classifier stopped part-way is
    not named in config.json, so nothing scores samples with it and the next run trains it again."""
    from vqvae.classifier import load_classifier

    chosen = preset("digits-tiny")
    folder = tmp_path / "run"
    train_vqvae(chosen.vqvae, dataclasses.replace(chosen.train, data=data, steps=5), folder)
    asked = iter(range(1000))
    train_classifier(folder, load_split(data, 8, 1), steps=500, should_stop=lambda: next(asked) >= 3)
    assert next(asked) < 10  # it stopped after a few steps, not at its 500th
    assert "classifier" not in ckpt.read_config(folder) and load_classifier(folder) is None
    train_classifier(folder, load_split(data, 8, 1), steps=5)
    assert load_classifier(folder) is not None
