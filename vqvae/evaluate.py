"""`python -m vqvae evaluate`: what a trained VQ-VAE achieves on the held-out split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from .data import Dataset, load_split
from .metrics import mse, perplexity, psnr_db, ssim
from .model import VQVAE


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


def evaluate_checkpoint(folder: str | Path, save: bool = True) -> dict[str, Any]:
    """Evaluate a checkpoint folder on its data's held-out split; saves metrics.json unless told not to."""
    loaded = ckpt.load_checkpoint(folder)
    source = loaded.train_config.data if loaded.train_config else "mnist5k"
    split = load_split(source, loaded.config.model.image_size, loaded.config.model.in_channels)
    metrics = {"data": source, "split": "test"} | reconstruction_metrics(loaded.model, split.test)
    metrics["train_steps"] = loaded.step
    metrics["train_time_s"] = round(loaded.train_time_s, 1)
    if save:
        ckpt.atomic_write_json(Path(folder) / ckpt.METRICS, metrics)
    return metrics
