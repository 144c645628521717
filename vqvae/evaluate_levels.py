"""`python -m vqvae evaluate` of a VQ-VAE-2: evaluate.py's held-out figures for each level, and what the
hierarchy splits between its levels (Razavi et al. 2019, section 3).

Keys follow history.json's: a level's figure is named "{level}_{figure}" ("top_codes_used"). Beside the
reconstruction from every level it measures the one from the top alone, every level below it filled by its
prior's most likely codes given the top (greedy ancestral decoding), which shows what the levels below add.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .ancestral import LevelDraw, condition_map, prior_labels, sample_levels
from .classifier import load_classifier, score
from .config import TRAIN_NLL_GRIDS
from .data import Dataset, Split
from .files import prior_file
from .hierarchy import VQVAE2
from .metrics import bits_per_latent, mse, perplexity, psnr_db, ssim
from .placement import weights_device
from .prior import GatedPixelCNN, UniformPrior, UnigramPrior

BATCH = 250


@torch.inference_mode()
def level_reconstruction_metrics(model: VQVAE2, data: Dataset) -> dict[str, Any]:
    """MSE, PSNR and SSIM of the reconstruction from every level, and each level's code usage."""
    model.eval()
    k = model.num_embeddings
    counts = {level: torch.zeros(k, dtype=torch.int64) for level in model.level_names}
    errors, similarities = [], []
    for start in range(0, len(data), BATCH):
        x = data.images[start : start + BATCH]
        grids = model.encode(x)
        x_hat = model.decode_indices(grids).clamp(0, 1)
        for level, grid in zip(model.level_names, grids):
            counts[level] += torch.bincount(grid.flatten(), minlength=k)
        errors.append(mse(x_hat, x))
        similarities.append(ssim(x_hat, x))
    mean_mse = float(torch.cat(errors).mean())
    shapes = model.latent_shapes
    metrics: dict[str, Any] = {
        "images": len(data),
        "mse": mean_mse,
        "psnr_db": psnr_db(mean_mse),
        "ssim": float(torch.cat(similarities).mean()),
        "levels": list(model.level_names),
        "num_embeddings": k,
        "latent_shapes": {level: list(shape) for level, shape in shapes.items()},
        "bits_per_image_uniform": sum(h * w for h, w in shapes.values()) * math.log2(k),
    }
    for level, level_counts in counts.items():
        used = int((level_counts > 0).sum())
        metrics[f"{level}_perplexity"] = float(perplexity(level_counts))
        metrics[f"{level}_codes_used"] = used
        metrics[f"{level}_codes_used_fraction"] = used / k
        metrics[f"{level}_dead_codes"] = k - used
    return metrics


def load_level_priors(folder: Path, model: VQVAE2) -> dict[str, GatedPixelCNN]:
    """The learned priors the folder has, by level, each checked against the codebooks it was made from, on the
    model's device."""
    device = weights_device(model)
    return {
        level: ckpt.load_prior(folder, level, fingerprint=ckpt.model_fingerprint(model, level), device=device)
        for level in model.level_names
        if (Path(folder) / prior_file(level)).exists()
    }


@torch.inference_mode()
def level_bits(
    model: VQVAE2,
    prior: GatedPixelCNN,
    grids: dict[str, torch.Tensor],
    level: str,
    labels: torch.Tensor | None,
) -> float:
    """Mean -log2 p(z_level | levels above, label) per latent of the grids (N, h_i, w_i) of every level."""
    names = list(model.level_names)
    above = names[: names.index(level)]
    nats = []
    for start in range(0, len(grids[level]), BATCH):
        rows = slice(start, start + BATCH)
        condition = condition_map(model, [grids[name][rows] for name in above], level)
        batch_labels = prior_labels(prior, None if labels is None else labels[rows])
        nats.append(-prior.log_prob(grids[level][rows], batch_labels, condition))
    h, w = model.latent_shapes[level]
    return float(torch.cat(nats).mean()) / (h * w * math.log(2))


def level_prior_metrics(
    folder: Path, model: VQVAE2, split: Split, samples_per_class: int = 20, seed: int = 0
) -> dict[str, Any]:
    """For each level: held-out bits per latent under the uniform, unigram and learned priors (the learned one
    given the true levels above), the learned prior's bits on training grids; the reconstruction from the
    top alone; and how often decoded class-conditional samples from the hierarchy show their class."""
    codes = ckpt.load_level_codes(folder, model.config, fingerprint=ckpt.model_fingerprint(model))
    priors = load_level_priors(folder, model)
    k = model.num_embeddings
    test = {level: level_codes.test for level, level_codes in codes.items()}
    test_labels = next(iter(codes.values())).test_labels
    rows = torch.linspace(0, len(split.train) - 1, min(TRAIN_NLL_GRIDS, len(split.train))).round().long()
    train = {level: level_codes.train[rows] for level, level_codes in codes.items()}
    train_labels = next(iter(codes.values())).train_labels[rows]
    result: dict[str, Any] = {"learned_levels": list(priors)}
    for level, shape in model.latent_shapes.items():
        simple = {"uniform": UniformPrior(k, shape), "unigram": UnigramPrior.fit(codes[level].train, k)}
        for name, prior in simple.items():
            result[f"{level}_{name}_bits_per_latent"] = bits_per_latent(prior, test[level], None)
        if level in priors:
            bits = level_bits(model, priors[level], test, level, test_labels)
            train_bits = level_bits(model, priors[level], train, level, train_labels)
            result[f"{level}_learned_bits_per_latent"] = bits
            result[f"{level}_learned_train_bits_per_latent"] = train_bits
            result[f"{level}_learned_generalisation_gap_bits"] = bits - train_bits
    if set(priors) >= set(model.level_names[1:]):
        result |= top_alone_metrics(model, priors, split.test, test_labels)
    if set(priors) == set(model.level_names):
        result |= sample_metrics(folder, model, priors, split.test, samples_per_class, seed)
    return result


@torch.inference_mode()
def top_alone_metrics(
    model: VQVAE2, priors: dict[str, GatedPixelCNN], test: Dataset, labels: torch.Tensor
) -> dict[str, Any]:
    """PSNR of decoding the held-out top codes with every level below drawn greedily by its prior."""
    errors = []
    for start in range(0, len(test), BATCH):
        x = test.images[start : start + BATCH]
        top = model.encode(x)[0]
        greedy = {level: LevelDraw(temperature=0.0) for level in model.level_names[1:]}
        drawn = sample_levels(model, priors, len(x), labels[start : start + BATCH], greedy, {model.level_names[0]: top})
        errors.append(mse(model.decode_indices(drawn.grids).clamp(0, 1), x))
    return {"psnr_db_top_alone": psnr_db(float(torch.cat(errors).mean()))}


def sample_metrics(
    folder: Path,
    model: VQVAE2,
    priors: dict[str, GatedPixelCNN],
    test: Dataset,
    samples_per_class: int,
    seed: int,
) -> dict[str, Any]:
    """How often the classifier of the data's classes names the asked class of decoded ancestral samples."""
    classifier = load_classifier(folder)
    if classifier is None or any(prior.config.num_classes == 0 for prior in priors.values()):
        return {}
    labels = torch.arange(classifier.shape[2]).repeat_interleave(samples_per_class)
    draws = {level: LevelDraw(seed=seed + i) for i, level in enumerate(model.level_names)}
    with torch.inference_mode():
        grids = sample_levels(model, priors, len(labels), labels, draws).grids
        samples = model.decode_indices(grids).clamp(0, 1)
    scores = score(classifier, samples, labels)
    return {
        "classifier_test_accuracy": score(classifier, test.images, test.labels).accuracy,
        "learned_sample_accuracy": scores.accuracy,
        "learned_sample_confidence": scores.confidence,
        "samples_per_class": samples_per_class,
    }
