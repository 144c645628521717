"""Background training runs (vqvae/runs.py): start, watch live, refuse, stop, fail, die."""

import os
import re
import signal
import time

import numpy as np
import pytest
from PIL import Image

from vqvae import checkpoint as ckpt
from vqvae.analysis import ANALYSIS
from vqvae.app.runs import RunManager, RunSettings, forget_unfinished
from vqvae.errors import TrainingError


def tiny(name: str, **changes) -> RunSettings:
    """digits-tiny, PCA only, no prior unless asked."""
    return RunSettings(**({"name": name, "preset": "digits-tiny", "with_umap": False, "prior_minutes": 0} | changes))


def wait_for(manager: RunManager, condition, timeout: float = 40.0):
    deadline = time.monotonic() + timeout
    while True:
        status = manager.status()
        if condition(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last status: {status}")
        time.sleep(0.05)


def ended(status) -> bool:
    return not status.active


@pytest.fixture
def manager(tmp_path):
    manager = RunManager(tmp_path / "runs", data_root=tmp_path)
    yield manager
    manager.stop(force=True)  # never leave a child behind a failed test


def test_a_run_finishes_with_a_folder_the_app_can_open(manager):
    manager.start(tiny("done", steps=20, prior_minutes=0.05, classifier_steps=10))
    status = wait_for(manager, ended)
    assert status.state == "finished", status.message
    assert status.phase == "done" and status.progress == 1.0
    assert status.message.startswith("VQ-VAE: 20 steps") and "learned prior" in status.message
    for name in (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.METRICS, ANALYSIS, ckpt.PRIOR):
        assert (status.folder / name).exists(), name
    assert ckpt.load_checkpoint(status.folder).step == 20
    assert [row["step"] for row in status.vqvae_history] == [5, 10, 15, 20]  # digits-tiny logs every 5 steps
    assert {"loss", "perplexity", "codes_used"} <= status.vqvae_history[0].keys()
    assert "prior" in ckpt.read_json(status.folder / ckpt.METRICS)


def test_live_curves_one_run_at_a_time_and_a_stop_that_keeps_the_checkpoint(manager):
    manager.start(tiny("long", minutes=5))
    first = wait_for(manager, lambda s: len(s.vqvae_history) >= 2)
    assert first.state == "running" and first.phase == "vqvae" and 0 < first.progress < 1
    assert first.step >= 10
    child = manager._run.process.pid  # trains niced: the app's requests get the cores first
    assert os.getpriority(os.PRIO_PROCESS, child) > os.getpriority(os.PRIO_PROCESS, 0)
    later = wait_for(manager, lambda s: len(s.vqvae_history) > len(first.vqvae_history))
    assert later.vqvae_history[: len(first.vqvae_history)] == first.vqvae_history

    with pytest.raises(TrainingError, match="a training run is already going: long"):
        manager.start(tiny("second", steps=5))

    manager.stop()
    assert manager.status().state in ("stopping", "stopped")
    status = wait_for(manager, ended)  # a five-minute run: it ends early only when stopped
    assert status.state == "stopped", status.message
    loaded = ckpt.load_checkpoint(status.folder)
    assert loaded.step >= later.step
    assert (status.folder / ckpt.METRICS).exists() and (status.folder / ANALYSIS).exists()
    assert not (status.folder / ckpt.PRIOR).exists()
    assert not (status.folder / "second").exists()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"name": "../x"}, "run name"),
        ({"name": "a/b"}, "run name"),
        ({"name": ""}, "run name"),
        ({"name": "x" * 65}, "run name"),
        ({"num_embeddings": 0}, "num_embeddings"),
        ({"num_embeddings": 32.5}, "whole number"),
        ({"learning_rate": float("inf")}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"steps": 10**9}, "steps"),
        ({"minutes": -1.0}, "minutes"),
        ({"steps": 0}, "steps"),
        ({"minutes": 0.0}, "minutes"),
        ({"minutes": float("nan")}, "minutes"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"embedding_dim": 0}, "embedding_dim"),
        ({"seed": -1}, "seed"),
        ({"update": "sgd"}, "update"),
        ({"preset": "imagenet"}, "preset"),
        ({"prior_minutes": -1.0}, "prior_minutes"),
        ({"prior_minutes": float("inf")}, "prior_minutes"),
    ],
)
def test_bad_settings_are_refused_before_any_process_starts(manager, changes, message):
    with pytest.raises(TrainingError, match=message):
        manager.start(tiny(**({"name": "bad"} | changes)))
    assert manager.status().state == "idle"
    assert not manager.runs_dir.exists()


def test_an_existing_folder_is_refused(manager):
    (manager.runs_dir / "taken").mkdir(parents=True)
    with pytest.raises(TrainingError, match="already exists"):
        manager.start(tiny("taken", steps=5))
    assert manager.status().state == "idle"


def test_form_values_are_read_as_the_browser_sends_them():
    settings = tiny("form", steps=20.0, num_embeddings=16.0, seed=3.0, data=" ", update="")
    assert (settings.steps, settings.num_embeddings, settings.seed) == (20, 16, 3)
    assert isinstance(settings.steps, int)
    assert settings.data is None and settings.update is None  # empty fields: the preset's


@pytest.mark.parametrize(
    "data, batch_size, message",
    [
        ("folder:{tmp}/missing", None, "no such file or folder: <data folder>/missing"),
        ("folder:{tmp}/empty", None, "no image files"),
        ("npz:{tmp}/none.npz", None, "holds no images"),
        ("folder:{tmp}/three", None, "batch size 64 is larger than the 3 images of folder:<data folder>/three"),
        (None, 5000, "batch size 5000 is larger than the 1797 images of digits"),
    ],
)
def test_bad_data_is_refused_before_any_process_starts(manager, tmp_path, data, batch_size, message):
    (tmp_path / "empty").mkdir()
    np.savez(tmp_path / "none.npz", images=np.zeros((0, 8, 8), dtype=np.uint8))
    for i in range(3):
        write_png(tmp_path / "three" / f"{i}.png")
    data = data and data.format(tmp=tmp_path)
    with pytest.raises(TrainingError, match=re.escape(message)) as refused:
        manager.start(tiny("bad", steps=5, data=data, batch_size=batch_size))
    assert str(tmp_path) not in str(refused.value)  # a visitor never sees where the data folder is
    assert manager.status().state == "idle"
    assert not manager.runs_dir.exists()


def write_png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(path)


def test_a_failing_data_source_ends_failed_with_its_message(manager, tmp_path):
    broken = tmp_path / "broken"  # image files by their names, enough of them, that do not decode
    broken.mkdir()
    for i in range(70):
        (broken / f"{i}.png").write_bytes(b"not an image")
    manager.start(tiny("nodata", steps=5, data=f"folder:{broken}"))
    status = wait_for(manager, ended)
    assert status.state == "failed"
    assert "cannot read image" in status.message and "<data folder>/broken" in status.message
    assert str(tmp_path) not in status.message
    assert not status.folder.exists()  # nothing saved, nothing left for the checkpoint picker


def test_a_killed_child_is_reported_failed_not_running(manager):
    manager.start(tiny("killed", minutes=5))
    wait_for(manager, lambda s: s.step >= 30)  # digits-tiny saves every 25 steps (after the step-25 log)
    os.kill(manager._run.process.pid, signal.SIGKILL)
    status = wait_for(manager, ended)
    assert status.state == "failed"
    assert "ended unexpectedly" in status.message
    assert ckpt.load_checkpoint(status.folder).step >= 25  # the periodic save survives

    manager.start(tiny("after", steps=5))  # and the manager takes a new run
    assert wait_for(manager, ended).state == "finished"


def test_a_run_killed_before_its_first_weights_leaves_no_folder(tmp_path):
    folder = tmp_path / "killed"  # killed in its first save: history and train state written, weights not
    folder.mkdir()
    for name in (ckpt.CONFIG, ckpt.HISTORY, ckpt.TRAIN_STATE, f".{ckpt.WEIGHTS}.x1y2z3w4.tmp"):
        (folder / name).write_text("{}")
    forget_unfinished(folder)
    assert not folder.exists()

    kept = tmp_path / "kept"  # with weights, or with a file of someone else's, the folder stays
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    (kept / ckpt.CONFIG).write_text("{}")
    forget_unfinished(kept)
    assert [p.name for p in kept.iterdir()] == ["notes.txt"]
