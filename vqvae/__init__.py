"""vqvae-explorer: VQ-VAE (van den Oord et al. 2017) with its learned prior.

Importing the package is free: each name below loads its module (and torch) on first
use, so code that needs only light modules, like the app at start-up, never waits for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "checkpoint": ("Checkpoint", "load_checkpoint", "load_prior"),
    "config": ("ModelConfig", "Preset", "PriorConfig", "QuantizerConfig", "TrainConfig", "VQVAEConfig", "preset"),
    "data": ("Dataset", "Split", "load_split"),
    "errors": ("CheckpointError", "DataError", "TrainingError", "VQVAEError"),
    "evaluate": ("evaluate_checkpoint",),
    "model": ("VQVAE", "VQVAEOutput"),
    "prior": ("GatedPixelCNN", "UniformPrior", "UnigramPrior"),
    "quantizer": ("QuantizerOutput", "VectorQuantizer", "VectorQuantizerEMA", "make_quantizer"),
    "prior_training": ("train_prior",),
    "train": ("TrainEvent", "TrainResult", "train_vqvae"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
