"""The model families config.json may name (DESIGN.md, "Model families"): for each, the type of its
settings, how they are read back from JSON, and the module they build. One loader (checkpoint.py) and
one training loop (train.py) serve them all through this table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn

from .config import (
    SpeechConfig,
    VQVAE2Config,
    VQVAEConfig,
    speech_config_from_dict,
    vqvae2_config_from_dict,
    vqvae_config_from_dict,
)
from .hierarchy import VQVAE2
from .model import VQVAE
from .speech.model import SpeechVQVAE

ModelSettings = VQVAEConfig | VQVAE2Config | SpeechConfig
Model = VQVAE | VQVAE2 | SpeechVQVAE


class Family(NamedTuple):
    settings: type
    from_dict: Callable[[Any], Any]  # config.json's section of the family's name -> its settings
    model: Callable[[Any], nn.Module]


FAMILIES = {
    "vqvae": Family(VQVAEConfig, vqvae_config_from_dict, VQVAE),  # van den Oord et al. 2017
    "vqvae2": Family(VQVAE2Config, vqvae2_config_from_dict, VQVAE2),  # Razavi et al. 2019
    "speech": Family(SpeechConfig, speech_config_from_dict, SpeechVQVAE),  # van den Oord et al. 2017, 4.3
}


def family_of(config: ModelSettings) -> str:
    """The name config.json gives the family of these settings."""
    for name, family in FAMILIES.items():
        if type(config) is family.settings:
            return name
    raise TypeError(f"no model family has settings of type {type(config).__name__}")


def build_model(config: ModelSettings) -> Model:
    """The untrained module these settings describe."""
    return FAMILIES[family_of(config)].model(config)


def level_names(model: Model) -> tuple[str | None, ...]:
    """The names of a model's levels of codes, top first; (None,) for the one unnamed grid of a VQ-VAE."""
    return model.level_names if isinstance(model, VQVAE2) else (None,)


def level_key(metric: str, level: str | None) -> str:
    """The name of a metric of one level in history.json and metrics.json: "top_perplexity", or
    "perplexity" for the one level of a VQ-VAE."""
    return metric if level is None else f"{level}_{metric}"


Codes = dict  # level name (None for a VQ-VAE's one grid) -> indices (B, h, w) int64, top first


def code_shapes(model: Model) -> dict[str | None, tuple[int, int]]:
    """Each level's grid (h, w), top first; the key None for a VQ-VAE's one grid."""
    return dict(model.latent_shapes) if isinstance(model, VQVAE2) else {None: model.latent_shape}


def encode_codes(model: Model, x: torch.Tensor) -> Codes:
    """x (B, C, H, W) in [0, 1] -> each level's indices (B, h, w), top first. Never changes a codebook."""
    grids = model.encode(x)
    return dict(zip(model.level_names, grids)) if isinstance(model, VQVAE2) else {None: grids}


def decode_codes(model: Model, codes: Codes) -> torch.Tensor:
    """Each level's indices (B, h, w) -> x_hat (B, C, H, W)."""
    if isinstance(model, VQVAE2):
        return model.decode_indices([codes[level] for level in model.level_names])
    return model.decode_indices(codes[None])
