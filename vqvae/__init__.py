"""vqvae-explorer: VQ-VAE (van den Oord et al. 2017) with its learned prior."""

from .config import ModelConfig, Preset, QuantizerConfig, TrainConfig, VQVAEConfig, preset
from .errors import CheckpointError, DataError, TrainingError, VQVAEError
from .model import VQVAE, VQVAEOutput
from .quantizer import QuantizerOutput, VectorQuantizer, VectorQuantizerEMA, make_quantizer

__all__ = [
    "VQVAE",
    "CheckpointError",
    "DataError",
    "ModelConfig",
    "Preset",
    "QuantizerConfig",
    "QuantizerOutput",
    "TrainConfig",
    "TrainingError",
    "VQVAEConfig",
    "VQVAEError",
    "VQVAEOutput",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "make_quantizer",
    "preset",
]
