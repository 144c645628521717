"""A folder read from a memory-mapped cache of its decoded images (vqvae/image_cache.py), batch by batch in
DataLoader workers, rather than loaded whole: the same batches and the same training as loaded whole, in
the memory of a few batches."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae import checkpoint as ckpt
from vqvae.config import TrainConfig, preset
from vqvae.data import load_split, pixel_variance
from vqvae.families import build_model
from vqvae.image_cache import cached_folder
from vqvae.train import VQVAETask, train_vqvae

ROOT = Path(__file__).resolve().parents[1]


def write_folder(folder: Path, count: int, side: int, seed: int = 0) -> None:
    """`count` PNG pictures of smooth random colour in three class subfolders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        picture = Image.fromarray(coarse).resize((side, side), Image.BILINEAR)
        (folder / f"class{i % 3}").mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"class{i % 3}" / f"{i:05d}.png")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("pictures")
    write_folder(path, 2000, 12)
    return path


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VQVAE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_streamed_folder_gives_the_batches_of_the_folder_loaded_whole(folder):
    """Resized from 12 to 8 pixels and made grey, as the model asks; shifted; across an epoch's end."""
    source = f"folder:{folder}"
    whole, streamed = load_split(source, 8, 1, stream=False), load_split(source, 8, 1, stream=True)
    assert isinstance(whole.train.images, torch.Tensor) and not isinstance(streamed.train.images, torch.Tensor)
    assert torch.equal(whole.test.images, streamed.test.images)
    assert torch.equal(whole.train.labels, streamed.train.labels) and whole.train.class_names == [
        "class0",
        "class1",
        "class2",
    ]
    assert pixel_variance(whole.train.images) == pixel_variance(streamed.train.images)
    config = TrainConfig(data=source, steps=40, batch_size=64, augment_shift=1)
    model = build_model(preset("digits-tiny").vqvae)
    loaded = VQVAETask(model, whole.train.images, config, 1.0).batches(0)
    read = VQVAETask(model, streamed.train.images, config, 1.0, workers=2).batches(0)
    assert 1800 // 64 < 40  # the steps cross an epoch's end, where the order is drawn again
    for step in range(40):
        assert torch.equal(next(loaded), next(read)), step


def test_a_streamed_run_trains_the_weights_of_a_run_loaded_whole(folder, tmp_path):
    chosen = preset("digits-tiny")
    train = TrainConfig(data=f"folder:{folder}", steps=20, batch_size=64, log_every=5)
    for name, stream in (("whole", False), ("streamed", True)):
        train_vqvae(chosen.vqvae, train, tmp_path / name, stream=stream)
    whole, streamed = (ckpt.read_tensors(tmp_path / name / ckpt.WEIGHTS)[0] for name in ("whole", "streamed"))
    assert all(torch.equal(whole[k], streamed[k]) for k in whole)


def test_the_cache_is_decoded_once_and_again_when_the_folder_changes(tmp_path, cache, monkeypatch):
    pictures = tmp_path / "few"
    write_folder(pictures, 30, 8)
    first = cached_folder(pictures)
    import vqvae.image_cache as image_cache

    monkeypatch.setattr(image_cache, "read_image", lambda *a: pytest.fail("decoded again"))
    again = cached_folder(pictures)
    assert again.path == first.path and np.array_equal(again.pixels, first.pixels)
    monkeypatch.undo()
    monkeypatch.setenv("VQVAE_CACHE", str(cache))
    write_folder(pictures / "more", 3, 8, seed=1)
    changed = cached_folder(pictures)
    assert changed.path != first.path and len(changed.labels) == 33


def test_a_damaged_cache_is_decoded_again(tmp_path, caplog):
    pictures = tmp_path / "few"
    write_folder(pictures, 30, 8)
    first = cached_folder(pictures)
    expected = np.array(first.pixels)
    first.path.write_bytes(first.path.read_bytes()[:200])  # cut short
    again = cached_folder(pictures)
    assert np.array_equal(again.pixels, expected)
    assert "damaged" in caplog.text


# The process's own peak (VmHWM): ru_maxrss would start from the RSS of the process that started it (Linux
# keeps it across fork and exec), which in a large test run is larger than anything measured here.
PEAK = """
import sys
from pathlib import Path
from vqvae.__main__ import main
status = main(sys.argv[1:])
status_lines = Path("/proc/self/status").read_text().splitlines()
print("peak", int(next(line.split()[1] for line in status_lines if line.startswith("VmHWM:"))) * 1024)
sys.exit(status)
"""


def peak_bytes(*args: str, env: dict) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PEAK, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.split("peak ")[-1])


def test_a_streamed_folder_trains_in_far_less_memory_than_its_decoded_size(tmp_path):
    """3,000 pictures of 96 x 96 take 332 MB as float images; streamed, the run's peak resident memory stays
    below that of the same run loaded whole by more than half of that. (The streamed run's DataLoader workers
    each hold a few batches besides the pages they share with it.)"""
    big = tmp_path / "big"
    write_folder(big, 3000, 96)
    decoded = 3000 * 3 * 96 * 96 * 4
    env = {**__import__("os").environ, "VQVAE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    run = ["train", "--preset", "digits-tiny", "--data", f"folder:{big}", "--steps", "5", "--no-eval"]
    streamed = peak_bytes(*run, "--out", str(tmp_path / "streamed"), "--stream", env=env)
    whole = peak_bytes(*run, "--out", str(tmp_path / "whole"), env=env)
    print(f"peak: streamed {streamed / 2**20:.0f} MiB, loaded whole {whole / 2**20:.0f} MiB")
    assert whole - streamed > decoded / 2
