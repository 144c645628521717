"""The shipped checkpoints, evaluated (never trained) on their data's held-out split."""

from pathlib import Path

import pytest

from vqvae import checkpoint as ckpt
from vqvae.evaluate import evaluate_checkpoint

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
# What each shipped model was trained on, and the floors its held-out figures stand on
SHIPPED = {
    "mnist": {
        "data": "mnist5k", "images": 500, "train_images": 4500,
        "latent_shape": [7, 7], "psnr_db": 28.0, "perplexity": 350.0,
        "classifier": 0.95, "learned_samples": 0.90, "below_unigram": 2.5, "gap": None,
    },
    "fashion-mnist": {
        "data": "fashion-mnist", "images": 10_000, "train_images": 60_000,
        "latent_shape": [7, 7], "psnr_db": 24.5, "perplexity": 350.0,
        "classifier": 0.85, "learned_samples": 0.85, "below_unigram": 3.8, "gap": 0.3,
    },
    "emoji": {
        "data": "emoji", "images": 363, "train_images": 3278,
        "latent_shape": [8, 8], "psnr_db": 22.5, "perplexity": 300.0,
        "classifier": 0.8, "learned_samples": 0.45, "below_unigram": 4.2, "gap": 0.5,
    },
}  # fmt: skip


@pytest.fixture(scope="module", params=list(SHIPPED))
def shipped(request):
    folder = CHECKPOINTS / request.param
    return folder, SHIPPED[request.param], evaluate_checkpoint(folder, save=False)


def test_shipped_checkpoint_meets_its_targets(shipped):
    _, expected, metrics = shipped
    assert metrics["data"] == expected["data"] and metrics["split"] == "test"
    assert metrics["images"] == expected["images"]
    assert metrics["num_embeddings"] == 512 and metrics["latent_shape"] == expected["latent_shape"]
    assert metrics["psnr_db"] >= expected["psnr_db"]
    assert metrics["codes_used"] == 512 and metrics["dead_codes"] == 0
    assert metrics["perplexity"] >= expected["perplexity"]


def test_shipped_checkpoint_was_trained_on_the_train_split_only(shipped):
    folder, expected, _ = shipped
    loaded = ckpt.load_checkpoint(folder)
    assert loaded.config.quantizer.embedding_dim == 64
    assert loaded.train_config.data == expected["data"]
    assert loaded.data.train_images == expected["train_images"]


def test_shipped_metrics_json_is_what_evaluate_measures(shipped):
    folder, _, metrics = shipped
    recorded = ckpt.read_json(folder / ckpt.METRICS)
    assert recorded.keys() == metrics.keys()
    for key in ("data", "split", "images", "codes_used", "num_embeddings", "latent_shape", "train_steps"):
        assert recorded[key] == metrics[key], key
    for key in ("mse", "psnr_db", "ssim", "perplexity"):
        assert recorded[key] == pytest.approx(metrics[key], rel=1e-4), key
    for key in ("learned_bits_per_latent", "unigram_bits_per_latent", "uniform_bits_per_latent"):
        assert recorded["prior"][key] == pytest.approx(metrics["prior"][key], rel=1e-3), key
    assert recorded["prior"].keys() == metrics["prior"].keys()


def test_shipped_prior_orders_the_three_priors(shipped):
    _, expected, metrics = shipped
    prior = metrics["prior"]
    assert prior["uniform_bits_per_latent"] == pytest.approx(9.0)  # log2 512
    assert prior["learned_bits_per_latent"] < prior["unigram_bits_per_latent"] < prior["uniform_bits_per_latent"]
    assert prior["unigram_bits_per_latent"] - prior["learned_bits_per_latent"] >= expected["below_unigram"]
    if expected["gap"] is not None:  # held-out against training NLL: a prior that has not learnt its data by heart
        assert prior["learned_generalisation_gap_bits"] <= expected["gap"]


def test_shipped_prior_samples_show_the_asked_class(shipped):
    _, expected, metrics = shipped
    prior = metrics["prior"]
    assert prior["classifier_test_accuracy"] >= expected["classifier"]
    assert prior["learned_sample_accuracy"] >= expected["learned_samples"]
    assert prior["uniform_sample_accuracy"] <= 0.2  # chance is 0.1 (0.11 for the nine emoji groups)
    assert prior["unigram_sample_accuracy"] <= 0.2
