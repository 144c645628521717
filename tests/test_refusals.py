"""Absurd settings are refused before training: one line of ours, status 2, nothing written.

Each case is a real `python -m vqvae` process. The settings and the data source are checked
before torch is imported (vqvae/sources.py), so most refusals take a fraction of a second.
"""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import snapshot
from vqvae.config import preset
from vqvae.train import train_vqvae

ROOT = Path(__file__).resolve().parents[1]


def vqvae(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vqvae", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def refused(done: subprocess.CompletedProcess, message: str) -> None:
    """Status 2 and stderr one line of ours saying `message`; no traceback."""
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert message in done.stderr, done.stderr


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sources")
    (folder / "empty").mkdir()
    np.savez(folder / "none.npz", images=np.zeros((0, 8, 8), dtype=np.uint8))
    return folder


TRAIN_CASES = [  # flags on top of digits-tiny, and what the refusal must say
    (["--K", "0"], "num_embeddings (K) must be at least 2"),
    (["--D", "0"], "embedding_dim (D) must be between 1 and 4096"),
    (["--lr", "inf"], "learning_rate must be a finite number in (0, 1]"),
    (["--lr", "nan"], "learning_rate must be a finite number in (0, 1]"),
    (["--lr", "-0.1"], "learning_rate must be a finite number in (0, 1]"),
    (["--steps", "1000000000"], "steps must be between 1 and 10,000,000"),
    (["--steps", "0"], "steps must be between 1 and 10,000,000"),
    (["--minutes", "-1"], "minutes must be > 0 and at most a week"),
    (["--minutes", "0"], "minutes must be > 0 and at most a week"),
    (["--minutes", "nan"], "minutes must be > 0 and at most a week"),
    (["--batch-size", "0"], "batch_size must be between 1 and 65536"),
    (["--batch-size", "5000"], "batch size 5000 is larger than the 1797 images of digits"),
    (["--save-every", "0"], "save_every must be >= 1"),
    (["--seed", "-1"], "seed must be between 0 and 2^31 - 1"),
    (["--hidden", "0"], "hidden_channels must be between 1 and 1024"),
    (["--preset", "imagenet"], "unknown preset 'imagenet'"),
    (["--data", "folder:{sources}/empty"], "no image files"),
    (["--data", "folder:{sources}/missing"], "no such file or folder"),
    (["--data", "npz:{sources}/none.npz"], "holds no images"),
    (["--data", "imagenet"], "unknown data source 'imagenet'"),
]


@pytest.mark.parametrize("flags, message", TRAIN_CASES, ids=[" ".join(flags) for flags, _ in TRAIN_CASES])
def test_train_refuses_absurd_settings_before_anything_is_written(tmp_path, sources, flags, message):
    out = tmp_path / "run"
    flags = [flag.format(sources=sources) for flag in flags]
    refused(vqvae("train", "--preset", "digits-tiny", "--out", str(out), "--no-eval", *flags), message)
    assert not out.exists()


def test_a_batch_larger_than_the_train_split_is_refused_before_the_folder_is_made(tmp_path):
    """1,700 of the 1,797 digits: only loading them tells that the train split holds 1,618."""
    out = tmp_path / "run"
    refused(vqvae("train", "--preset", "digits-tiny", "--out", str(out), "--batch-size", "1700"), "larger than the")
    assert not out.exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    chosen = preset("digits-tiny")
    folder = tmp_path_factory.mktemp("trained") / "run"
    train_vqvae(chosen.vqvae, dataclasses.replace(chosen.train, steps=5), folder)
    return folder


def test_an_existing_checkpoint_is_left_untouched(trained, tmp_path):
    folder = shutil.copytree(trained, tmp_path / "run")
    before = snapshot(folder)
    refused(vqvae("train", "--preset", "digits-tiny", "--out", str(folder), "--K", "0"), "num_embeddings (K)")
    refused(vqvae("train", "--preset", "digits-tiny", "--out", str(folder)), "already holds a checkpoint")
    refused(vqvae("train", "--out", str(tmp_path / "nothing"), "--resume"), "holds no run to resume")
    assert snapshot(folder) == before


PRIOR_CASES = [
    (["--lr", "inf"], "learning_rate must be a finite number in (0, 1]"),
    (["--steps", "0"], "steps must be between 1 and 10,000,000"),
    (["--steps", "1000000000"], "steps must be between 1 and 10,000,000"),
    (["--minutes", "-1"], "minutes must be > 0 and at most a week"),
    (["--batch-size", "0"], "batch_size must be between 1 and 65536"),
    (["--save-every", "0"], "save_every must be >= 1"),
]


@pytest.mark.parametrize("flags, message", PRIOR_CASES, ids=[" ".join(flags) for flags, _ in PRIOR_CASES])
def test_train_prior_refuses_absurd_settings_and_leaves_the_folder_untouched(trained, tmp_path, flags, message):
    folder = shutil.copytree(trained, tmp_path / "run")
    before = snapshot(folder)
    refused(vqvae("train-prior", str(folder), *flags), message)
    assert snapshot(folder) == before


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch-size", "5000"], "batch size 5000 is larger than the 1618 code grids to train on"),
        (["--layers", "0"], "num_layers must be between 1 and 64"),
        (["--dropout", "1.5"], "dropout must satisfy 0 <= dropout < 1"),
    ],
)
def test_train_prior_settings_that_need_the_folder_are_refused_before_it_changes(trained, tmp_path, flags, message):
    folder = shutil.copytree(trained, tmp_path / "run")
    before = snapshot(folder)
    refused(vqvae("train-prior", str(folder), "--steps", "5", *flags), message)
    assert snapshot(folder) == before  # no prior settings in config.json, no code grids extracted
