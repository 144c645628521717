"""Priors over code grids p(z) (van den Oord et al. 2017, section 3.3): the learned gated PixelCNN
and the two simple priors it is compared with."""

from .draw import sample_categorical
from .network import GatedLayer, GatedPixelCNN, HeadMatrices, LayerMatrices
from .simple import Prior, UniformPrior, UnigramPrior

__all__ = [
    "GatedLayer",
    "GatedPixelCNN",
    "HeadMatrices",
    "LayerMatrices",
    "Prior",
    "UniformPrior",
    "UnigramPrior",
    "sample_categorical",
]
