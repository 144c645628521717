"""The priors a checkpoint is compared under, everywhere (evaluate, the app, `sample`): the uniform
prior the VQ-VAE trains with, the unigram prior of its training codes, and the learned prior
when the folder has one (van den Oord et al. 2017, sections 3.1 and 3.3)."""

from __future__ import annotations

from pathlib import Path

import torch

from . import checkpoint as ckpt
from .config import PRIORS, VQVAEConfig
from .families import Codes, Model
from .files import prior_file
from .hierarchy import VQVAE2
from .placement import weights_device
from .prior import Prior, UniformPrior, UnigramPrior


def priors_to_compare(
    folder: Path, config: VQVAEConfig, train_indices: torch.Tensor, fingerprint: str, device: torch.device | str = "cpu"
) -> dict[str, Prior]:
    """uniform, unigram (the code frequencies of `train_indices` (N, h, w)) and, when the folder has it,
    learned (made from the codebook with this fingerprint, on `device`), in that order."""
    names = PRIORS if (Path(folder) / ckpt.PRIOR).exists() else PRIORS[:2]
    return {name: prior_named(name, folder, config, fingerprint, train_indices, device) for name in names}


def prior_named(
    name: str,
    folder: Path,
    config: VQVAEConfig,
    fingerprint: str,
    train_indices: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Prior:
    """One of PRIORS; the unigram prior needs the training codes (N, h, w)."""
    k = config.quantizer.num_embeddings
    if name == "uniform":
        return UniformPrior(k, config.latent_shape)
    if name == "unigram":
        return UnigramPrior.fit(train_indices, k)
    if name == "learned":
        return ckpt.load_prior(folder, fingerprint=fingerprint, device=device)
    raise ValueError(f"unknown prior {name!r}; choose one of {PRIORS}")


def level_priors_to_compare(folder: Path, model: Model, train: Codes) -> dict[str, dict[str | None, Prior]]:
    """For every level of the model (its one grid: the key None), top first: the uniform prior, the unigram
    prior of that level's training codes `train`, and, when the folder has every level's, the learned prior."""
    device = weights_device(model)  # the learned priors compute beside the model
    if not isinstance(model, VQVAE2):
        fingerprint = ckpt.model_fingerprint(model)
        return {
            name: {None: prior}
            for name, prior in priors_to_compare(folder, model.config, train[None], fingerprint, device).items()
        }
    k = model.num_embeddings
    compared: dict[str, dict[str | None, Prior]] = {
        "uniform": {level: UniformPrior(k, shape) for level, shape in model.latent_shapes.items()},
        "unigram": {level: UnigramPrior.fit(train[level], k) for level in model.level_names},
    }
    if all((Path(folder) / prior_file(level)).exists() for level in model.level_names):
        compared["learned"] = {
            level: ckpt.load_prior(folder, level, fingerprint=ckpt.model_fingerprint(model, level), device=device)
            for level in model.level_names
        }
    return compared
