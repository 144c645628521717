"""Extract the code grids of a data set with a trained VQ-VAE, once, for the prior to learn from.

The prior is fitted to the codes of the training split (van den Oord et al. 2017,
section 3.3). Besides the images as they are, the training grids include codes of
randomly translated copies, the same augmentation the VQ-VAE trained with, so a
prior trained on a few thousand images sees more than a few thousand grids. A
hierarchy's grids are extracted for every level at once, each level's prior
learning from its own (Razavi et al. 2019, Algorithm 2).
"""

from __future__ import annotations

import torch

from .checkpoint import Codes
from .data import Shifted, Split
from .families import Model, level_names
from .image_cache import StreamedImages

Images = torch.Tensor | StreamedImages | Shifted  # (N, C, H, W) in [0, 1], read a slice at a time


@torch.inference_mode()
def encode_levels(model: Model, images: Images, batch_size: int = 500) -> dict[str | None, torch.Tensor]:
    """images (N, C, H, W) in [0, 1] -> each level's indices (N, h_i, w_i) int64, top first; the key None
    for a VQ-VAE's one grid. The images are read a slice at a time (a tensor, or images streamed or shifted
    as they are read)."""
    model.eval()
    names = level_names(model)
    batches = []
    for i in range(0, len(images), batch_size):
        grids = model.encode(images[i : i + batch_size])
        batches.append(grids if isinstance(grids, list) else [grids])
    return {name: torch.cat([batch[k] for batch in batches]) for k, name in enumerate(names)}


def encode_all(model: Model, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """images (N, C, H, W) in [0, 1] -> a VQ-VAE's indices (N, h, w) int64."""
    return encode_levels(model, images, batch_size)[None]


def extract_level_codes(
    model: Model, split: Split, shifted_copies: int = 0, shift: int = 2, seed: int = 0
) -> dict[str | None, Codes]:
    """Each level's codes of the train split (plus `shifted_copies` translated copies of it) and of the test
    split, top first; the key None for a VQ-VAE's one grid."""
    train = [encode_levels(model, split.train.images)]
    for copy in range(shifted_copies):
        train.append(encode_levels(model, Shifted(split.train.images, shift, seed, step=-1 - copy)))
    labels = split.train.labels.repeat(1 + shifted_copies)
    test = encode_levels(model, split.test.images)
    return {
        name: Codes(torch.cat([grids[name] for grids in train]), labels, test[name], split.test.labels) for name in test
    }


def extract_codes(model: Model, split: Split, shifted_copies: int = 0, shift: int = 2, seed: int = 0) -> Codes:
    """A VQ-VAE's codes of the train split (plus `shifted_copies` translated copies of it) and of the test split."""
    return extract_level_codes(model, split, shifted_copies, shift, seed)[None]
