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


def evaluated(name: str, table: dict) -> tuple:
    """A shipped checkpoint's folder, its expected figures and what evaluate measures on it now."""
    folder = CHECKPOINTS / name
    return folder, table[name], evaluate_checkpoint(folder, save=False)


@pytest.fixture(scope="module", params=list(SHIPPED))
def shipped(request):
    return evaluated(request.param, SHIPPED)


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


# The shipped VQ-VAE-2 (Razavi et al. 2019): its figures are per level
SHIPPED_LEVELS = {
    "emoji64-2level": {
        "data": "emoji", "images": 363, "train_images": 3278,
        "latent_shapes": {"top": [8, 8], "bottom": [16, 16]}, "psnr_db": 23.5, "codes_used": 0.95,
        "perplexity": {"top": 350.0, "bottom": 280.0}, "below_unigram": {"top": 4.5, "bottom": 3.2},
        "classifier": 0.8, "learned_samples": 0.35,
    },
}  # fmt: skip


@pytest.fixture(scope="module", params=list(SHIPPED_LEVELS))
def shipped_levels(request):
    return evaluated(request.param, SHIPPED_LEVELS)


def test_shipped_hierarchy_uses_every_level_and_meets_its_targets(shipped_levels):
    _, expected, metrics = shipped_levels
    assert metrics["data"] == expected["data"] and metrics["split"] == "test"
    assert metrics["images"] == expected["images"] and metrics["latent_shapes"] == expected["latent_shapes"]
    assert metrics["psnr_db"] >= expected["psnr_db"]
    for level in expected["latent_shapes"]:
        assert metrics[f"{level}_codes_used_fraction"] >= expected["codes_used"], level
        assert metrics[f"{level}_perplexity"] >= expected["perplexity"][level], level


def test_shipped_hierarchy_was_trained_on_the_train_split_only(shipped_levels):
    folder, expected, _ = shipped_levels
    loaded = ckpt.load_checkpoint(folder)
    assert loaded.model.level_names == tuple(expected["latent_shapes"])
    assert loaded.train_config.data == expected["data"]
    assert loaded.data.train_images == expected["train_images"]


def test_shipped_hierarchy_metrics_json_is_what_evaluate_measures(shipped_levels):
    folder, _, metrics = shipped_levels
    recorded = ckpt.read_json(folder / ckpt.METRICS)
    assert recorded.keys() == metrics.keys() and recorded["prior"].keys() == metrics["prior"].keys()
    for key in ("data", "split", "images", "levels", "latent_shapes", "train_steps", "measured"):
        assert recorded[key] == metrics[key], key
    for key in ("mse", "psnr_db", "ssim", "top_perplexity", "bottom_perplexity"):
        assert recorded[key] == pytest.approx(metrics[key], rel=1e-4), key
    for key, value in metrics["prior"].items():
        if key.endswith("bits_per_latent") or key == "psnr_db_top_alone":
            assert recorded["prior"][key] == pytest.approx(value, rel=1e-3), key


def test_shipped_hierarchy_has_a_prior_per_level_better_than_unigram(shipped_levels):
    _, expected, metrics = shipped_levels
    prior = metrics["prior"]
    assert prior["learned_levels"] == list(expected["latent_shapes"])
    for level in expected["latent_shapes"]:
        learned, unigram = prior[f"{level}_learned_bits_per_latent"], prior[f"{level}_unigram_bits_per_latent"]
        assert prior[f"{level}_uniform_bits_per_latent"] == pytest.approx(9.0)  # log2 512
        assert unigram - learned >= expected["below_unigram"][level], level
    # the top codes alone, the bottom filled by its prior: the picture's layout, not its detail
    assert 0 < prior["psnr_db_top_alone"] < metrics["psnr_db"]


def test_shipped_hierarchy_samples_show_the_asked_class(shipped_levels):
    _, expected, metrics = shipped_levels
    prior = metrics["prior"]
    assert prior["classifier_test_accuracy"] >= expected["classifier"]
    assert prior["learned_sample_accuracy"] >= expected["learned_samples"]
