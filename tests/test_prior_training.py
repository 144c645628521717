"""The prior pipeline on a tiny checkpoint: extract codes, train, load, evaluate, sample."""

import dataclasses
import json
import math
import shutil
import subprocess
import sys

import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.config import TrainConfig, preset
from vqvae.errors import CheckpointError, TrainingError
from vqvae.evaluate import evaluate_checkpoint
from vqvae.prior_training import train_prior
from vqvae.train import train_vqvae

SMALL_PRIOR = {"hidden_channels": 16, "embedding_dim": 16, "num_layers": 4}


def prior_training(steps):
    return TrainConfig(data="digits", steps=steps, batch_size=64, learning_rate=3e-3, log_every=10, save_every=20)


@pytest.fixture(scope="module")
def vqvae_folder(tmp_path_factory):
    tiny = preset("digits-tiny")
    folder = tmp_path_factory.mktemp("vqvae") / "run"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=100), folder)
    return folder


@pytest.fixture(scope="module")
def prior_folder(vqvae_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prior") / "run"
    shutil.copytree(vqvae_folder, folder)
    train_prior(folder, prior_training(60), settings=SMALL_PRIOR)
    return folder


def copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def test_codes_are_extracted_once_and_match_the_encoder(prior_folder):
    loaded = ckpt.load_checkpoint(prior_folder)
    codes = ckpt.load_codes(prior_folder, loaded.config)
    assert codes.train.shape[1:] == codes.test.shape[1:] == (4, 4)
    assert codes.train.shape[0] == 1618 and codes.test.shape[0] == 179  # digits-tiny trains without shifts
    from vqvae.data import load_split

    test = load_split("digits", 8, 1).test
    with torch.no_grad():
        assert torch.equal(loaded.model.encode(test.images), codes.test)
    assert torch.equal(codes.test_labels, test.labels)


def test_train_prior_lowers_the_nll(prior_folder):
    history = ckpt.read_json(prior_folder / ckpt.PRIOR_HISTORY)
    assert history[-1]["bits_per_latent"] < history[0]["bits_per_latent"] - 0.3
    assert history[0]["bits_per_latent"] < math.log2(32) + 1  # starts near uniform


def test_prior_resume_equals_an_uninterrupted_run(vqvae_folder, prior_folder, tmp_path):
    folder = copy(vqvae_folder, tmp_path)
    events = []
    train_prior(
        folder,
        prior_training(60),
        settings=SMALL_PRIOR,
        on_event=events.append,
        should_stop=lambda: bool(events) and events[-1].step >= 30,
    )
    train_prior(folder, prior_training(60), resume=True)
    ours, straight = ckpt.read_tensors(folder / ckpt.PRIOR)[0], ckpt.read_tensors(prior_folder / ckpt.PRIOR)[0]
    assert all(torch.equal(ours[name], straight[name]) for name in straight)


def test_a_second_prior_never_overwrites_the_first(prior_folder, tmp_path):
    folder = copy(prior_folder, tmp_path)
    before = (folder / ckpt.PRIOR).read_bytes()
    with pytest.raises(TrainingError, match="already has a learned prior"):
        train_prior(folder, prior_training(5), settings=SMALL_PRIOR)
    assert (folder / ckpt.PRIOR).read_bytes() == before


@pytest.mark.parametrize("field,value", [("num_embeddings", 64), ("latent_height", 5)])
def test_a_prior_for_another_vqvae_is_refused(prior_folder, tmp_path, field, value):
    folder = copy(prior_folder, tmp_path)
    config = json.loads((folder / ckpt.CONFIG).read_text())
    config["prior"][field] = value
    (folder / ckpt.CONFIG).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="but this VQ-VAE makes"):
        ckpt.load_prior(folder)


def test_a_missing_prior_is_a_clear_error(vqvae_folder):
    with pytest.raises(CheckpointError, match="no learned prior"):
        ckpt.load_prior(vqvae_folder)


def test_evaluate_reports_all_three_priors(prior_folder):
    prior = evaluate_checkpoint(prior_folder, save=False)["prior"]
    assert prior["uniform_bits_per_latent"] == pytest.approx(5.0)  # log2 K, K = 32
    assert prior["uniform_bits_per_image"] == pytest.approx(80.0)
    assert prior["learned_bits_per_latent"] < prior["uniform_bits_per_latent"]
    assert prior["unigram_bits_per_latent"] < prior["uniform_bits_per_latent"]


def test_evaluate_sets_the_learned_priors_training_nll_beside_its_heldout_nll(prior_folder):
    from vqvae.metrics import bits_per_latent

    prior = evaluate_checkpoint(prior_folder, save=False)["prior"]
    model = ckpt.load_checkpoint(prior_folder)
    codes = ckpt.load_codes(prior_folder, model.config)
    train_images = model.data.train_images  # fewer than TRAIN_NLL_GRIDS: every training grid counts
    learned = ckpt.load_prior(prior_folder)
    labels = codes.train_labels[:train_images] if learned.config.num_classes else None
    expected = bits_per_latent(learned, codes.train[:train_images], labels)
    assert prior["learned_train_bits_per_latent"] == pytest.approx(expected, rel=1e-5)
    gap = prior["learned_bits_per_latent"] - prior["learned_train_bits_per_latent"]
    assert prior["learned_generalisation_gap_bits"] == pytest.approx(gap)


def test_sample_command_writes_a_grid_for_each_prior(prior_folder, tmp_path):
    from PIL import Image

    for name in ("learned", "unigram", "uniform"):
        out = tmp_path / f"{name}.png"
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "vqvae",
                "sample",
                str(prior_folder),
                "--prior",
                name,
                "--n",
                "20",
                "--scale",
                "1",
                "--out",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        with Image.open(out) as picture:
            assert picture.size == (2 + 10 * 10, 2 + 2 * 10)  # 10 classes to a row, 8x8 tiles
