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
    assert loaded.extra["train_images"] == 4500


def test_shipped_metrics_json_is_what_evaluate_measures(metrics):
    recorded = ckpt.read_json(SHIPPED / ckpt.METRICS)
    assert recorded.keys() == metrics.keys()
    for key, value in metrics.items():
        assert recorded[key] == pytest.approx(value, rel=1e-4), key
