"""Checkpoint folders that survive a kill at any moment.

A handful of the kill trials of scripts/kill_trials.py (a real `python -m vqvae train`
killed with SIGKILL, then resumed), and the states a kill can leave, one by one.
"""

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_safetensors_bytes

from vqvae import checkpoint as ckpt
from vqvae.errors import CheckpointError
from vqvae.prior_training import train_prior
from vqvae.train import train_vqvae

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_random_kills_leave_folders_that_load_and_resume_bit_for_bit(tmp_path):
    kill_trials = load_script("kill_trials")
    report = kill_trials.run_trials(5, seed=0, steps=40, workdir=tmp_path)
    print(kill_trials.summary(report))
    assert report.trials == 5
    assert report.problems == []
    assert report.saved + report.finished_first >= 1  # the later kills come after a save


def same_tensors(a: Path, b: Path) -> bool:
    x, y = ckpt.read_tensors(a)[0], ckpt.read_tensors(b)[0]
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def stale_temp(folder: Path, name: str) -> Path:
    """What a kill in the middle of writing `name` leaves: a half-written temp file beside it."""
    path = folder / f".{name}.k1ll3d_x.tmp"
    path.write_bytes(b"half a file")
    return path


def test_a_resume_before_the_first_save_starts_again_from_step_0(tiny, tmp_path):
    train = dataclasses.replace(tiny.train, steps=12, save_every=5)
    train_vqvae(tiny.vqvae, train, tmp_path / "straight")
    killed = tmp_path / "killed"  # killed after config.json, in the middle of the first save
    killed.mkdir()
    shutil.copy(tmp_path / "straight" / ckpt.CONFIG, killed)
    stale = [stale_temp(killed, name) for name in (ckpt.HISTORY, ckpt.TRAIN_STATE)]
    with pytest.raises(CheckpointError, match="vqvae.safetensors is missing"):
        ckpt.load_checkpoint(killed)  # refused, never half-accepted

    train_vqvae(tiny.vqvae, train, killed, resume=True)
    for name in (ckpt.WEIGHTS, ckpt.TRAIN_STATE):
        assert same_tensors(tmp_path / "straight" / name, killed / name), name
    assert not any(path.exists() for path in stale)  # the next run into the folder clears them


def test_a_prior_resumed_before_its_first_save_starts_again_from_step_0(tiny, tmp_path):
    base = tmp_path / "base"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=5), base)
    shutil.copytree(base, tmp_path / "killed")
    prior_train = dataclasses.replace(tiny.train, steps=8, save_every=5, batch_size=32)
    settings = {"hidden_channels": 8, "num_layers": 2}
    train_prior(base, prior_train, conditional=False, settings=settings)
    killed = tmp_path / "killed"  # killed after config.json gained the prior's settings
    shutil.copy(base / ckpt.CONFIG, killed)
    with pytest.raises(CheckpointError, match="has no learned prior"):
        ckpt.load_prior(killed)

    train_prior(killed, prior_train, resume=True)
    for name in (ckpt.PRIOR, ckpt.PRIOR_STATE):
        assert same_tensors(base / name, killed / name), name


def test_a_kill_between_the_last_train_state_and_its_weights_is_mended_by_the_resume(tiny, tmp_path):
    """The last save writes the train state, then the weights: killed between the two, the folder holds the
    final train state beside the weights of the save before; the resume, with no step left, writes them."""
    train = dataclasses.replace(tiny.train, steps=10, save_every=5)
    train_vqvae(tiny.vqvae, dataclasses.replace(train, steps=5), tmp_path / "early")
    train_vqvae(tiny.vqvae, train, tmp_path / "straight")
    killed = tmp_path / "killed"
    shutil.copytree(tmp_path / "straight", killed)
    shutil.copy(tmp_path / "early" / ckpt.WEIGHTS, killed / ckpt.WEIGHTS)  # step 5's, as the kill left them
    assert ckpt.load_checkpoint(killed).step == 5

    train_vqvae(tiny.vqvae, train, killed, resume=True)
    assert ckpt.load_checkpoint(killed).step == 10
    for name in (ckpt.WEIGHTS, ckpt.TRAIN_STATE):
        assert same_tensors(tmp_path / "straight" / name, killed / name), name


def test_weights_without_their_train_state_are_never_trained_over(tiny, tmp_path):
    train = dataclasses.replace(tiny.train, steps=5)
    train_vqvae(tiny.vqvae, train, tmp_path)
    (tmp_path / ckpt.TRAIN_STATE).unlink()  # as in a folder copied without it: not something a kill leaves
    before = (tmp_path / ckpt.WEIGHTS).read_bytes()
    with pytest.raises(CheckpointError, match="no train_state.safetensors to resume from"):
        train_vqvae(tiny.vqvae, dataclasses.replace(train, steps=10), tmp_path, resume=True)
    assert (tmp_path / ckpt.WEIGHTS).read_bytes() == before


def test_a_history_ahead_of_the_weights_is_cut_to_them_on_load(tiny, tmp_path):
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=10), tmp_path)
    history = ckpt.read_json(tmp_path / ckpt.HISTORY)
    ahead = history + [dict(history[-1], step=15)]  # history.json of step 15 was saved, its weights not yet
    (tmp_path / ckpt.HISTORY).write_text(json.dumps(ahead))
    assert [row["step"] for row in ckpt.load_checkpoint(tmp_path).history] == [5, 10]


def test_every_header_length_loads_even_one_starting_with_the_pickle_byte(tmp_path):
    """A safetensors header of 128 + 256 n bytes starts with 0x80, as a pickle does: it must still load."""
    tensors = {"weight": torch.ones(3)}
    lengths = set()
    for pad in range(300):
        data = save_safetensors_bytes(tensors, metadata={"pad": "x" * pad})
        lengths.add(data[0])
        path = tmp_path / "weights.safetensors"
        path.write_bytes(data)
        loaded, metadata = ckpt.read_tensors(path)
        assert torch.equal(loaded["weight"], tensors["weight"]) and metadata["pad"] == "x" * pad
    assert 0x80 in lengths
