"""Extract the code grids of a data set with a trained VQ-VAE, once, for the prior to learn from.

The prior is fitted to the codes of the training split (van den Oord et al. 2017,
section 3.3). Besides the images as they are, the training grids include codes of
randomly translated copies, the same augmentation the VQ-VAE trained with, so a
prior trained on a few thousand images sees more than a few thousand grids.
"""

from __future__ import annotations

import torch

from .checkpoint import Codes
from .data import Split, random_shift
from .model import VQVAE


@torch.inference_mode()
def encode_all(model: VQVAE, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """images (N, C, H, W) in [0, 1] -> indices (N, h, w) int64."""
    model.eval()
    return torch.cat([model.encode(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def extract_codes(model: VQVAE, split: Split, shifted_copies: int = 0, shift: int = 2, seed: int = 0) -> Codes:
    """Codes of the train split (plus `shifted_copies` translated copies of it) and of the test split."""
    train = [encode_all(model, split.train.images)]
    for copy in range(shifted_copies):
        train.append(encode_all(model, random_shift(split.train.images, shift, seed, step=-1 - copy)))
    labels = split.train.labels.repeat(1 + shifted_copies)
    return Codes(torch.cat(train), labels, encode_all(model, split.test.images), split.test.labels)
