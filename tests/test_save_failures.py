"""Saving on a full disk or into a read-only folder (vqvae/atomic.py, train.py).

Each failure is our CheckpointError (or, from the training loop, TrainingError) naming the
file, its folder and the cause; no temp file is left; the previous save is byte-identical
and loads. The faults are injected where the write path calls the OS, since root ignores
chmod; where this machine lets us mount a small tmpfs, the same is checked on a real one.
"""

import dataclasses
import errno
import io
import os
import shutil
import subprocess

import pytest
import torch

from tests.helpers import snapshot
from vqvae import atomic
from vqvae import checkpoint as ckpt
from vqvae.config import preset
from vqvae.errors import CheckpointError, TrainingError
from vqvae.train import train_vqvae

NO_SPACE = "No space left on device (the disk is full)"
READ_ONLY = "Read-only file system (the folder is on a read-only file system)"


class FullDisk(io.FileIO):
    """A file on a disk that fills up: half of a write lands, then ENOSPC."""

    def write(self, data):
        super().write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def failing(code: int):
    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


def full_disk(fd, mode):
    return FullDisk(fd, "wb")


FAULTS = {  # name: (how to inject it, what the message must say)
    "disk full while writing": (lambda mp: mp.setattr(atomic.os, "fdopen", full_disk), NO_SPACE),
    "disk full at fsync": (lambda mp: mp.setattr(atomic.os, "fsync", failing(errno.ENOSPC)), NO_SPACE),
    "read-only folder": (lambda mp: mp.setattr(atomic.tempfile, "mkstemp", failing(errno.EROFS)), READ_ONLY),
    "rename refused": (lambda mp: mp.setattr(atomic.os, "replace", failing(errno.EROFS)), READ_ONLY),
}


@pytest.fixture(scope="module")
def ten_steps(tmp_path_factory):
    chosen = preset("digits-tiny")
    folder = tmp_path_factory.mktemp("trained") / "run"
    train_vqvae(chosen.vqvae, dataclasses.replace(chosen.train, steps=10), folder)
    return folder


@pytest.fixture
def trained(ten_steps, tmp_path):
    return shutil.copytree(ten_steps, tmp_path / "run")


def save_changed_weights(folder):
    model = ckpt.load_checkpoint(folder).model
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(1.0)
    ckpt.save_weights(folder, model, step=11)


def save_history(folder):
    ckpt.atomic_write_json(folder / ckpt.HISTORY, [{"step": 11, "loss": 0.5}])


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("save, name", [(save_changed_weights, ckpt.WEIGHTS), (save_history, ckpt.HISTORY)])
def test_a_failed_save_says_why_and_keeps_the_previous_file(trained, monkeypatch, fault, save, name):
    before = snapshot(trained)
    inject, cause = FAULTS[fault]
    inject(monkeypatch)
    with pytest.raises(CheckpointError) as caught:
        save(trained)
    monkeypatch.undo()
    assert str(caught.value) == f"cannot save {name} in {trained}: {cause}; the previous {name}, if any, is unchanged"
    assert snapshot(trained) == before  # no temp file, every file as it was
    assert ckpt.load_checkpoint(trained).step == 10


def test_a_periodic_save_on_a_full_disk_stops_training_and_keeps_the_last_save(tiny, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    train = dataclasses.replace(tiny.train, steps=20, save_every=5)
    at_last_save = {}

    def fill_the_disk_after_step_10(event):
        if event.kind == "save" and event.step == 10:
            at_last_save.update(snapshot(folder))
            monkeypatch.setattr(atomic.os, "fsync", failing(errno.ENOSPC))

    with pytest.raises(TrainingError) as caught:
        train_vqvae(tiny.vqvae, train, folder, on_event=fill_the_disk_after_step_10)
    monkeypatch.undo()
    message = str(caught.value)
    assert message.startswith("training stopped at step 15, which could not be saved: cannot save ")
    assert str(folder) in message and NO_SPACE in message
    assert message.endswith("A resume continues from the save of step 10.")
    assert snapshot(folder) == at_last_save
    assert ckpt.load_checkpoint(folder).step == 10

    train_vqvae(tiny.vqvae, train, folder, resume=True)  # room again: the run ends as if nothing happened
    train_vqvae(tiny.vqvae, train, tmp_path / "straight")
    resumed, straight = (ckpt.read_tensors(f / ckpt.WEIGHTS)[0] for f in (folder, tmp_path / "straight"))
    assert all(torch.equal(resumed[name], straight[name]) for name in straight)


# --- the same on a real file system, where a small tmpfs can be mounted (root, not in a container) ---


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def fill(disk):
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(fd)


def test_a_real_full_disk_and_a_real_read_only_folder(trained, small_disk):
    folder = small_disk / "run"
    shutil.copytree(trained, folder)
    before = snapshot(folder)
    fill(small_disk)
    with pytest.raises(CheckpointError, match=f"cannot save vqvae.safetensors in {folder}: No space left on device"):
        save_changed_weights(folder)
    assert snapshot(folder) == before
    (small_disk / "filler").unlink()

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True, capture_output=True)
    with pytest.raises(CheckpointError, match=f"cannot save vqvae.safetensors in {folder}: Read-only file system"):
        save_changed_weights(folder)
    assert snapshot(folder) == before
    assert ckpt.load_checkpoint(folder).step == 10
