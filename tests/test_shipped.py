"""The shipped checkpoint, evaluated (never trained) on the 500 held-out digits."""

from pathlib import Path

import pytest

from vqvae import checkpoint as ckpt
from vqvae.evaluate import evaluate_checkpoint

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "mnist"


@pytest.fixture(scope="module")
def metrics():
    return evaluate_checkpoint(SHIPPED, save=False)


def test_shipped_checkpoint_meets_its_targets(metrics):
    assert metrics["data"] == "mnist5k" and metrics["split"] == "test" and metrics["images"] == 500
    assert metrics["num_embeddings"] == 512 and metrics["latent_shape"] == [7, 7]
    assert metrics["psnr_db"] >= 28.0
    assert metrics["codes_used"] == 512 and metrics["dead_codes"] == 0
    assert metrics["perplexity"] >= 350.0


def test_shipped_checkpoint_was_trained_on_the_train_split_only():
    loaded = ckpt.load_checkpoint(SHIPPED)
    assert loaded.config.quantizer.embedding_dim == 64
    assert loaded.train_config.data == "mnist5k"
    assert loaded.data.train_images == 4500


def test_shipped_metrics_json_is_what_evaluate_measures(metrics):
    recorded = ckpt.read_json(SHIPPED / ckpt.METRICS)
    assert recorded.keys() == metrics.keys()
    for key in ("data", "split", "images", "codes_used", "num_embeddings", "latent_shape", "train_steps"):
        assert recorded[key] == metrics[key], key
    for key in ("mse", "psnr_db", "ssim", "perplexity"):
        assert recorded[key] == pytest.approx(metrics[key], rel=1e-4), key
    for key in ("learned_bits_per_latent", "unigram_bits_per_latent", "uniform_bits_per_latent"):
        assert recorded["prior"][key] == pytest.approx(metrics["prior"][key], rel=1e-3), key


def test_shipped_prior_orders_the_three_priors(metrics):
    prior = metrics["prior"]
    assert prior["uniform_bits_per_latent"] == pytest.approx(9.0)  # log2 512
    assert prior["learned_bits_per_latent"] < prior["unigram_bits_per_latent"] < prior["uniform_bits_per_latent"]


def test_shipped_prior_samples_show_the_asked_class(metrics):
    prior = metrics["prior"]
    assert prior["classifier_test_accuracy"] >= 0.95
    assert prior["learned_sample_accuracy"] >= 0.90
    assert prior["uniform_sample_accuracy"] <= 0.2  # chance is 0.1
    assert prior["unigram_sample_accuracy"] <= 0.2
