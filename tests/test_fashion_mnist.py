"""`--data fashion-mnist`: Zalando's images as Debian's dataset-fashion-mnist installs them (scripts/test.sh
installs it), in their own split, with their class names; a missing or broken install is one clear line."""

import json

import numpy as np
import pytest

from tests.test_cli import run
from tests.test_data import write_idx
from vqvae import sources
from vqvae.app.exposure import allowed_source
from vqvae.data import FASHION_CLASSES, load_source, load_split
from vqvae.errors import DataError
from vqvae.sources import check_source, count_images


def test_fashion_mnist_brings_its_own_split_and_class_names():
    assert count_images("fashion-mnist") == 60_000  # from the IDX headers alone
    split = load_split("fashion-mnist", 28, 1)
    assert split.train.images.shape == (60_000, 1, 28, 28) and split.test.images.shape == (10_000, 1, 28, 28)
    assert split.train.class_names == split.test.class_names == FASHION_CLASSES
    assert FASHION_CLASSES[:2] == ["T-shirt/top", "Trouser"] and len(FASHION_CLASSES) == 10
    for part in (split.train, split.test):  # Zalando's split is balanced: the same count of every class
        counts = np.bincount(part.labels.numpy(), minlength=10)
        assert (counts == len(part) // 10).all()
    assert 0.0 <= float(split.train.images.min()) and float(split.train.images.max()) == 1.0


def installed_at(monkeypatch, folder):
    monkeypatch.setitem(sources.INSTALLED, "fashion-mnist", (folder, "dataset-fashion-mnist"))


def test_without_the_package_one_line_says_how_to_install_it(monkeypatch, tmp_path):
    installed_at(monkeypatch, tmp_path / "nowhere")
    for attempt in (lambda: load_source("fashion-mnist"), lambda: check_source("fashion-mnist", 32)):
        with pytest.raises(DataError, match="sudo apt-get install dataset-fashion-mnist") as error:
            attempt()
        assert "\n" not in str(error.value)


def fashion_files(folder, train_labels, test_labels=None):
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (len(train_labels), 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.asarray(train_labels))
    if test_labels is not None:
        write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (len(test_labels), 28, 28)))
        write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.asarray(test_labels))


def test_an_install_without_its_test_files_or_with_foreign_labels_is_refused(monkeypatch, tmp_path):
    installed_at(monkeypatch, tmp_path)
    fashion_files(tmp_path, np.arange(20) % 10)
    with pytest.raises(DataError, match="train and t10k"):
        load_source("fashion-mnist")
    fashion_files(tmp_path, np.arange(20) % 10, [0, 1, 2, 11])
    with pytest.raises(DataError, match="labels must lie in 0 to 9"):
        load_source("fashion-mnist")
    fashion_files(tmp_path, np.arange(20) % 10, np.arange(10))
    assert load_source("fashion-mnist").test.class_names[9] == "Ankle boot"


def test_a_run_from_the_app_may_train_on_it(tmp_path):
    assert allowed_source("fashion-mnist", tmp_path, None) == "fashion-mnist"


def test_the_fashion_preset_trains_on_the_installed_images(tmp_path):
    run("train", "--preset", "fashion", "--out", str(tmp_path / "run"), "--steps", "3", "--no-eval")
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["data"] == "fashion-mnist" and config["train"]["augment_shift"] == 0
    assert config["extra"]["class_names"] == FASHION_CLASSES and config["extra"]["train_images"] == 60_000
