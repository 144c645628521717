"""`python -m vqvae sample`: images decoded from codes drawn from a prior (van den Oord et al. 2017,
section 3.3): the uniform prior the VQ-VAE trained with, the unigram prior of its training codes, or the
learned one; for a VQ-VAE-2 every level's, the learned ones drawn ancestrally (ancestral.py)."""

from __future__ import annotations

import torch

from . import checkpoint as ckpt
from .ancestral import LevelDraw, sample_levels
from .checkpoint import Checkpoint
from .comparison import prior_named
from .evaluate_levels import load_level_priors
from .hierarchy import VQVAE2
from .placement import weights_device
from .prior import UniformPrior, UnigramPrior


def asked_labels(classes: int, n: int, label: int | None) -> torch.Tensor | None:
    """The labels of n samples from a prior of `classes` classes: `label` for all, or every class in turn."""
    if not classes:
        return None
    if label is not None and not 0 <= label < classes:
        raise ValueError(f"--label must be a class between 0 and {classes - 1}")
    return torch.full((n,), label) if label is not None else torch.arange(n) % classes


@torch.inference_mode()
def sample_images(
    loaded: Checkpoint, prior: str, n: int, label: int | None, temperatures: list[float], seed: int
) -> torch.Tensor:
    """n decoded samples (n, C, H, W) in [0, 1]; temperatures one per level, top first."""
    if isinstance(loaded.model, VQVAE2):
        return _hierarchy_samples(loaded, prior, n, label, temperatures, seed)
    fingerprint = ckpt.model_fingerprint(loaded.model)  # the weights are read once
    codes = ckpt.load_codes(loaded.path, loaded.config, fingerprint=fingerprint) if prior == "unigram" else None
    train = None if codes is None else codes.train
    chosen = prior_named(prior, loaded.path, loaded.config, fingerprint, train, weights_device(loaded.model))
    labels = asked_labels(chosen.config.num_classes if prior == "learned" else 0, n, label)
    grids = chosen.sample(n, labels=labels, temperature=temperatures[0], seed=seed)
    return loaded.model.decode_indices(grids).clamp(0, 1)


def _hierarchy_samples(
    loaded: Checkpoint, prior: str, n: int, label: int | None, temperatures: list[float], seed: int
) -> torch.Tensor:
    model: VQVAE2 = loaded.model
    names = model.level_names
    if prior == "learned":
        priors = load_level_priors(loaded.path, model)
        missing = [level for level in names if level not in priors]
        if missing:
            raise ckpt.CheckpointError(
                f"{loaded.path} has no learned prior of its {', '.join(missing)} level; train it with "
                f"`python -m vqvae train-prior {loaded.path} --level {missing[0]}`"
            )
        labels = asked_labels(priors[names[0]].config.num_classes, n, label)
        draws = {level: LevelDraw(t, seed + i) for i, (level, t) in enumerate(zip(names, temperatures))}
        return model.decode_indices(sample_levels(model, priors, n, labels, draws).grids).clamp(0, 1)
    k = model.num_embeddings
    codes = ckpt.load_level_codes(loaded.path, model.config) if prior == "unigram" else None
    grids = []
    for i, (level, shape) in enumerate(model.latent_shapes.items()):
        simple = UniformPrior(k, shape) if codes is None else UnigramPrior.fit(codes[level].train, k)
        grids.append(simple.sample(n, temperature=temperatures[i], seed=seed + i))
    return model.decode_indices(grids).clamp(0, 1)
