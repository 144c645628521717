"""vqvae-explorer: VQ-VAE (van den Oord et al. 2017) with its learned prior."""

from .checkpoint import Checkpoint, load_checkpoint, load_prior
from .config import ModelConfig, Preset, PriorConfig, QuantizerConfig, TrainConfig, VQVAEConfig, preset
from .data import Dataset, Split, load_split
from .errors import CheckpointError, DataError, TrainingError, VQVAEError
from .evaluate import evaluate_checkpoint
from .model import VQVAE, VQVAEOutput
from .prior import GatedPixelCNN, UniformPrior, UnigramPrior
from .quantizer import QuantizerOutput, VectorQuantizer, VectorQuantizerEMA, make_quantizer
from .train import TrainEvent, TrainResult, train_prior, train_vqvae

__all__ = [
    "VQVAE",
    "Checkpoint",
    "CheckpointError",
    "DataError",
    "Dataset",
    "GatedPixelCNN",
    "ModelConfig",
    "Preset",
    "PriorConfig",
    "QuantizerConfig",
    "QuantizerOutput",
    "Split",
    "TrainConfig",
    "TrainEvent",
    "TrainResult",
    "TrainingError",
    "UniformPrior",
    "UnigramPrior",
    "VQVAEConfig",
    "VQVAEError",
    "VQVAEOutput",
    "VectorQuantizer",
    "VectorQuantizerEMA",
    "evaluate_checkpoint",
    "load_checkpoint",
    "load_prior",
    "load_split",
    "make_quantizer",
    "preset",
    "train_prior",
    "train_vqvae",
]
