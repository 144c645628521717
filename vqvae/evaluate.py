"""`python -m vqvae evaluate`: what a trained VQ-VAE achieves on the held-out split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .classifier import load_classifier, score
from .comparison import priors_to_compare
from .config import TRAIN_NLL_GRIDS
from .data import Dataset, Split, load_split
from .errors import CheckpointError
from .evaluate_levels import level_prior_metrics, level_reconstruction_metrics
from .families import family_of
from .files import prior_file
from .hierarchy import VQVAE2
from .metrics import bits_per_latent, mse, perplexity, psnr_db, ssim
from .model import VQVAE
from .placement import weights_device


@torch.inference_mode()
def reconstruction_metrics(model: VQVAE, data: Dataset, batch_size: int = 500) -> dict[str, Any]:
    """MSE, PSNR, SSIM and code usage of `model` on `data` (the model is left in eval mode)."""
    model.eval()
    k = model.num_embeddings
    counts = torch.zeros(k, dtype=torch.int64)
    errors, similarities = [], []
    for start in range(0, len(data), batch_size):
        x = data.images[start : start + batch_size]
        indices = model.encode(x)  # (B, h, w)
        x_hat = model.decode_indices(indices).clamp(0, 1)
        counts += torch.bincount(indices.flatten(), minlength=k)
        errors.append(mse(x_hat, x))
        similarities.append(ssim(x_hat, x))
    mean_mse = float(torch.cat(errors).mean())
    h, w = model.latent_shape
    used = int((counts > 0).sum())
    return {
        "images": len(data),
        "mse": mean_mse,
        "psnr_db": psnr_db(mean_mse),
        "ssim": float(torch.cat(similarities).mean()),
        "perplexity": float(perplexity(counts)),
        "codes_used": used,
        "dead_codes": k - used,
        "num_embeddings": k,
        "latent_shape": [h, w],
        "bits_per_image_uniform": h * w * math.log2(k),
    }


@torch.inference_mode()
def reconstruction_pairs(model: VQVAE, data: Dataset, n: int) -> torch.Tensor:
    """n images spread evenly over `data`, then their reconstructions: (2n, C, H, W)."""
    model.eval()
    x = data.images[torch.linspace(0, len(data) - 1, min(n, len(data))).round().long()]
    return torch.cat([x, model.decode_indices(model.encode(x)).clamp(0, 1)])


def prior_metrics(
    folder: Path, model: VQVAE, split: Split, samples_per_class: int = 20, seed: int = 0
) -> dict[str, Any]:
    """Held-out NLL of each prior, the learned prior's NLL on (up to TRAIN_NLL_GRIDS of) the grids it
    was fitted to, and how often decoded class-conditional samples show their class."""
    fingerprint = ckpt.codebook_fingerprint(model.quantizer.embedding)
    codes = ckpt.load_codes(folder, model.config, fingerprint=fingerprint)
    h, w = model.latent_shape
    compared = priors_to_compare(folder, model.config, codes.train, fingerprint, weights_device(model))
    conditional = compared["learned"].config.num_classes > 0
    result: dict[str, Any] = {}
    for name, prior in compared.items():
        labels = codes.test_labels if name == "learned" and conditional else None
        bits = bits_per_latent(prior, codes.test, labels)
        result[f"{name}_bits_per_latent"] = bits
        result[f"{name}_bits_per_image"] = bits * h * w
    # The train split's own grids come first in codes.train (translated copies, if any, follow)
    rows = torch.linspace(0, len(split.train) - 1, min(TRAIN_NLL_GRIDS, len(split.train))).round().long()
    labels = codes.train_labels[rows] if conditional else None
    result["learned_train_bits_per_latent"] = bits_per_latent(compared["learned"], codes.train[rows], labels)
    result["learned_generalisation_gap_bits"] = (
        result["learned_bits_per_latent"] - result["learned_train_bits_per_latent"]
    )
    test = split.test
    classifier = load_classifier(folder)
    if classifier is None or not conditional:
        return result
    result["classifier_test_accuracy"] = score(classifier, test.images, test.labels).accuracy
    labels = torch.arange(classifier.shape[2]).repeat_interleave(samples_per_class)
    for name, prior in compared.items():
        with torch.inference_mode():
            grids = prior.sample(len(labels), labels=labels if name == "learned" else None, seed=seed)
            samples = model.decode_indices(grids).clamp(0, 1)
        scores = score(classifier, samples, labels)
        result[f"{name}_sample_accuracy"] = scores.accuracy
        result[f"{name}_sample_confidence"] = scores.confidence
    result["samples_per_class"] = samples_per_class
    return result


def evaluate_checkpoint(folder: str | Path, save: bool = True, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Evaluate a checkpoint folder on its data's held-out split, its networks on `device`; saves metrics.json
    unless told not to.
    A VQ-VAE-2's figures come from evaluate_levels.py."""
    loaded = ckpt.load_checkpoint(folder, device)
    if loaded.train_config is None:
        raise CheckpointError(f"{folder} does not say which data it was trained on, so it has no held-out split")
    source = loaded.train_config.data
    if family_of(loaded.config) == "speech":
        metrics = {"data": source, "split": "test"} | speech_checkpoint_metrics(loaded)
        return _finished(Path(folder), loaded, metrics, save)
    split = load_split(source, loaded.config.model.image_size, loaded.config.model.in_channels)
    hierarchy = isinstance(loaded.model, VQVAE2)
    measure = level_reconstruction_metrics if hierarchy else reconstruction_metrics
    metrics = {"data": source, "split": "test"} | measure(loaded.model, split.test)
    if hierarchy and any((Path(folder) / prior_file(level)).exists() for level in loaded.model.level_names):
        metrics["prior"] = level_prior_metrics(Path(folder), loaded.model, split)
    elif (Path(folder) / ckpt.PRIOR).exists():
        metrics["prior"] = prior_metrics(Path(folder), loaded.model, split)
    return _finished(Path(folder), loaded, metrics, save)


def speech_checkpoint_metrics(loaded: ckpt.Checkpoint) -> dict[str, Any]:
    from .speech.data import load_speech_split  # the speech family's, loaded only for it
    from .speech.evaluate import speech_metrics

    return speech_metrics(loaded.path, loaded.model, load_speech_split(loaded.train_config.data))


def _finished(folder: Path, loaded: ckpt.Checkpoint, metrics: dict[str, Any], save: bool) -> dict[str, Any]:
    """The figures with the training's length, and the fingerprints of the files they measured (so a
    reader can tell they still hold); saved as metrics.json unless told not to."""
    metrics["train_steps"] = loaded.step
    metrics["train_time_s"] = round(loaded.train_time_s, 1)
    metrics["measured"] = ckpt.measured_files(folder)
    if save:
        ckpt.atomic_write_json(folder / ckpt.METRICS, metrics)
    return metrics
