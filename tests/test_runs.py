"""Background training runs (vqvae/runs.py): start, watch live, refuse, stop, fail, die, and
leave behind only whole runs."""

import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save as save_safetensors_bytes

from vqvae import checkpoint as ckpt
from vqvae.analysis import ANALYSIS
from vqvae.app.catalog import Catalog
from vqvae.app.run_child import MEMORY_LIMIT, discard
from vqvae.app.runs import NOT_YOURS, RunManager, RunSettings, plan_run
from vqvae.app.sizes import HEADER_BYTES, LOAD_LIMIT, prior_file_bytes, vqvae_file_bytes
from vqvae.config import PriorConfig, preset_with
from vqvae.errors import TrainingError
from vqvae.model import VQVAE
from vqvae.prior import GatedPixelCNN


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


def partial(status) -> Path:
    """Where a run trains until it has ended: runs/.NAME.partial."""
    return status.folder.with_name(f".{status.folder.name}.partial")


@pytest.fixture
def manager(tmp_path):
    manager = RunManager(tmp_path / "runs", data_root=tmp_path)
    yield manager
    manager.close()  # never leave a child behind a failed test


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
    limits = Path(f"/proc/{child}/limits").read_text()  # and within its memory limit
    assert re.search(rf"Max address space\s+{MEMORY_LIMIT}\s", limits), limits
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


@pytest.mark.parametrize("folder", ["taken", ".taken.partial"])
def test_an_existing_folder_finished_or_partial_is_refused(manager, folder):
    (manager.runs_dir / folder).mkdir(parents=True)
    with pytest.raises(TrainingError, match="already exists"):
        manager.start(tiny("taken", steps=5))
    assert manager.status().state == "idle"
    assert sorted(p.name for p in manager.runs_dir.iterdir()) == [folder]


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


def test_a_data_source_that_does_not_decode_is_refused_with_its_message(manager, tmp_path):
    broken = tmp_path / "broken"  # image files by their names, enough of them, that do not decode
    broken.mkdir()
    for i in range(70):
        (broken / f"{i}.png").write_bytes(b"not an image")
    with pytest.raises(TrainingError, match="cannot read image") as refused:
        manager.start(tiny("nodata", steps=5, data=f"folder:{broken}"))
    assert str(tmp_path) not in str(refused.value)
    assert manager.status().state == "idle" and not manager.runs_dir.exists()


def test_a_killed_child_is_reported_failed_and_its_folder_removed(manager):
    manager.start(tiny("killed", minutes=5))
    status = wait_for(manager, lambda s: s.step >= 30)  # digits-tiny saves every 25 steps (after the step-25 log)
    assert (partial(status) / ckpt.WEIGHTS).exists()
    os.kill(manager._run.process.pid, signal.SIGKILL)  # as the kernel ends a process out of memory
    status = wait_for(manager, ended)
    assert status.state == "failed"
    assert "ended unexpectedly (killed by SIGKILL" in status.message and "nothing was kept" in status.message
    assert list(manager.runs_dir.iterdir()) == []  # its weights went with it: only whole runs stay

    manager.start(tiny("after", steps=5))  # and the manager takes a new run
    assert wait_for(manager, ended).state == "finished"


# --- only whole runs are kept, and only they are offered -----------------------------------------


def test_a_run_is_offered_only_once_its_whole_pipeline_has_ended(manager, tmp_path):
    catalog = Catalog((manager.runs_dir,), tmp_path)
    manager.start(tiny("whole", minutes=5))
    status = wait_for(manager, lambda s: s.step >= 30)
    assert (partial(status) / ckpt.WEIGHTS).exists() and (partial(status) / ckpt.CONFIG).exists()
    assert catalog.choices() == []  # weights, but a run still training: not offered
    with pytest.raises(ckpt.CheckpointError):
        catalog.resolve("runs/.whole.partial")

    manager.stop()  # a stopped run is evaluated and analysed, then takes its name
    status = wait_for(manager, ended)
    assert status.state == "stopped", status.message
    assert catalog.choices() == ["runs/whole"]  # at once, though the catalog had listed the root before
    assert catalog.resolve("runs/whole") == status.folder.resolve()
    assert (status.folder / ANALYSIS).exists() and not partial(status).exists()


def test_a_run_stopped_at_once_leaves_no_folder(manager):
    manager.start(tiny("forced", minutes=5))
    wait_for(manager, lambda s: s.step >= 30)
    manager.stop(force=True)
    status = manager.status()
    assert status.state == "stopped" and "nothing was kept" in status.message
    assert list(manager.runs_dir.iterdir()) == []


def test_a_run_that_fails_after_saving_weights_leaves_no_folder(manager):
    manager.start(tiny("late", steps=20))
    blocker = manager.runs_dir / ".late.partial" / ANALYSIS  # a folder where the analysis goes: its save fails
    blocker.mkdir()
    (blocker / "in-the-way").write_text("")
    status = wait_for(manager, ended)
    assert status.state == "failed" and "cannot save analysis.safetensors" in status.message
    assert status.phase == "analyse"  # after its weights, metrics and all were saved
    assert list(manager.runs_dir.iterdir()) == []


def test_discarding_a_partial_run_removes_only_it_and_follows_no_link(tmp_path):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not the run's")
    folder = runs / ".gone.partial"
    (folder / "sub").mkdir(parents=True)
    for name in (ckpt.CONFIG, ckpt.WEIGHTS, f".{ckpt.WEIGHTS}.x1y2z3w4.tmp", "sub/x"):
        (folder / name).write_text("{}")
    os.symlink(outside, folder / "link", target_is_directory=True)
    os.symlink(outside / "keep.txt", folder / "file-link")
    discard(folder)
    assert not folder.exists() and (outside / "keep.txt").read_text() == "not the run's"

    os.symlink(outside, runs / ".alias.partial", target_is_directory=True)  # a link in its place: left alone
    discard(runs / ".alias.partial")
    assert (runs / ".alias.partial").is_symlink() and (outside / "keep.txt").exists()
    finished = runs / "finished"
    finished.mkdir()
    with pytest.raises(ValueError, match="not a run's partial folder"):
        discard(finished)  # a finished run's folder is never removed
    assert finished.exists()


# --- refused before they start: what the app could not load ------------------------------------


@pytest.mark.parametrize(
    "k, d, message",
    [
        (65536, 4096, "vqvae.safetensors would be about 2,0[0-9]{2} MB, more than the 2,048 MB"),
        (32768, 8, "num_embeddings \\(K\\) must be at most 16,384"),
        (1024, 2048, "K x D = 2,097,152 values is more than the 1,048,576"),
    ],
)
def test_a_run_whose_checkpoint_could_not_load_is_refused_before_it_starts(manager, k, d, message):
    with pytest.raises(TrainingError, match=message):
        manager.start(tiny("huge", num_embeddings=k, embedding_dim=d))
    assert manager.status().state == "idle" and not manager.runs_dir.exists()


def test_the_load_limit_is_the_checkpoints_own():
    assert LOAD_LIMIT == ckpt.MAX_FILE_BYTES


def tensor_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


@pytest.mark.parametrize(
    "preset, changes",
    [
        ("digits-tiny", {}),
        ("mnist", {}),
        ("mnist", {"update": "loss", "num_embeddings": 100, "embedding_dim": 3}),
        ("mnist", {"downsample": 2, "num_residual_blocks": 0}),
        ("digits-tiny", {"downsample": 8, "num_residual_blocks": 3}),
        ("digits-tiny", {"downsample": 4, "in_channels": 3}),
    ],
)
def test_the_size_estimate_is_the_saved_weights(preset, changes):
    model_fields = {"downsample", "num_residual_blocks", "in_channels"}
    config = preset_with(
        preset,
        model={k: v for k, v in changes.items() if k in model_fields},
        quantizer={k: v for k, v in changes.items() if k not in model_fields},
        train={},
    ).vqvae
    model = VQVAE(config)
    estimate, saved = vqvae_file_bytes(config), len(save_safetensors_bytes(model.state_dict()))
    assert estimate - HEADER_BYTES == tensor_bytes(model)  # every tensor counted, exactly
    assert saved <= estimate


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"num_classes": 10},
        {"num_classes": 3, "condition_channels": 5, "kernel_size": 5, "num_layers": 3, "embedding_dim": 7},
    ],
)
def test_the_prior_size_estimate_is_the_saved_prior(settings):
    config = PriorConfig(40, 4, 3, **settings)
    prior = GatedPixelCNN(config)
    estimate = prior_file_bytes(config)
    assert estimate - HEADER_BYTES == tensor_bytes(prior)
    assert len(save_safetensors_bytes(prior.state_dict())) <= estimate


def test_the_training_pages_defaults_pass_the_size_checks():
    plan = plan_run(RunSettings(name="defaults", preset="mnist", num_embeddings=512, embedding_dim=64))
    assert plan.prior_train is not None and vqvae_file_bytes(plan.vqvae) < 2 * 1024**2


def test_a_hierarchy_preset_is_left_to_the_command_line():
    with pytest.raises(TrainingError, match="is a VQ-VAE-2, which trains from the command line"):
        plan_run(RunSettings(name="two", preset="emoji64-2level"))
    with pytest.raises(TrainingError, match="is a speech model, which trains from the command line"):
        plan_run(RunSettings(name="said", preset="speech-digits"))


# --- the child's memory ------------------------------------------------------------------------


def test_a_run_out_of_memory_fails_saying_so_and_leaves_no_folder(tmp_path):
    """The images of this archive take 1.2 GB once loaded: more than a 1.5 GiB process holds beside torch."""
    np.savez_compressed(tmp_path / "big.npz", images=np.zeros((400_000, 28, 28), dtype=np.uint8))
    manager = RunManager(tmp_path / "runs", data_root=tmp_path, memory_bytes=3 * 2**29)
    try:
        manager.start(tiny("big", steps=5, data=f"npz:{tmp_path / 'big.npz'}"))
        status = wait_for(manager, ended, timeout=120)
    finally:
        manager.close()
    assert status.state == "failed"
    assert status.message.startswith("ran out of memory (limit 1.5 GiB)"), status.message
    assert list(manager.runs_dir.iterdir()) == []


# --- only whoever started a run may stop it -----------------------------------------------------


def test_only_whoever_started_a_run_can_stop_it(manager):
    manager.start(tiny("mine", minutes=5), owner="alice-token")
    wait_for(manager, lambda s: s.step >= 5)
    assert manager.status("alice-token").owned_by_you
    assert not manager.status("bob-token").owned_by_you and not manager.status().owned_by_you
    for other in ("bob-token", None, "alice-token "):
        with pytest.raises(TrainingError, match=re.escape(NOT_YOURS)):
            manager.stop(owner=other)
        with pytest.raises(TrainingError, match=re.escape(NOT_YOURS)):
            manager.stop(force=True, owner=other)
    assert manager.status().state == "running" and manager._run.process.is_alive()

    manager.stop(force=True, owner="alice-token")
    assert manager.status("alice-token").state == "stopped"


def test_a_run_started_without_an_owner_can_be_stopped_by_anyone(manager):
    manager.start(tiny("anyones", minutes=5))
    wait_for(manager, lambda s: s.step >= 5)
    assert manager.status().owned_by_you and manager.status("someone").owned_by_you
    manager.stop(force=True, owner="someone")
    assert manager.status().state == "stopped"


@pytest.mark.parametrize("owner", ["", 42, "x" * 257, b"token"])
def test_a_bad_owner_token_is_refused(manager, owner):
    with pytest.raises(TrainingError, match="owner token"):
        manager.start(tiny("owned", steps=5), owner=owner)
    assert manager.status().state == "idle" and not manager.runs_dir.exists()
