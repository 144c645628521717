"""One grid of codes of a model, as analysis.py sees it: a VQ-VAE's one grid, or one level of a VQ-VAE-2
(Razavi et al. 2019), whose pictures come from every level together.

A level's codes are drawn in the picture only with the other levels beside them. A held-out image's
reconstruction uses every level's own codes; a code shown alone sits on a grid of its level's
'empty' code, with every other level at its own empty code (`fill`).
"""

from __future__ import annotations

import torch

from .families import Model
from .hierarchy import VQVAE2
from .placement import weights_device
from .quantizer import _Quantizer


class LevelView:
    def __init__(self, model: Model, level: str | None = None, fill: dict[str, int] | None = None):
        """level: a VQ-VAE-2's level by name (None for a VQ-VAE). fill: the code every other level holds when
        this level's grids are decoded alone (0 where not given)."""
        self.model, self.level, self.fill = model, level, fill or {}
        self.hierarchy = isinstance(model, VQVAE2)
        if self.hierarchy != (level is not None):
            raise ValueError("a level is named exactly for a VQ-VAE-2")
        self.index = model.level_names.index(level) if self.hierarchy else 0

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.model.latent_shapes[self.level] if self.hierarchy else self.model.latent_shape

    @property
    def num_embeddings(self) -> int:
        return self.model.num_embeddings

    @property
    def image_size(self) -> int:
        return self.model.config.model.image_size

    @property
    def quantizer(self) -> _Quantizer:
        return self.model.quantizers[self.index] if self.hierarchy else self.model.quantizer

    @torch.inference_mode()
    def z_e(self, images: torch.Tensor) -> torch.Tensor:
        """images (M, C, H, W) -> this level's encoder output (M, D, h, w)."""
        if self.hierarchy:
            return self.model.encode_levels(images)[0][self.index]
        device = weights_device(self.model)
        return self.model.encoder(images.to(device)).to(images.device)

    @torch.inference_mode()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """images (M, C, H, W) -> decoded from every level's own codes, (M, C, H, W) in [0, 1]."""
        return self.model.decode_indices(self.model.encode(images)).clamp(0, 1)

    @torch.inference_mode()
    def decode_alone(self, grids: torch.Tensor) -> torch.Tensor:
        """This level's grids (n, h, w), every other level at its `fill` code -> (n, C, H, W) in [0, 1]."""
        if not self.hierarchy:
            return self.model.decode_indices(grids).clamp(0, 1)
        n = grids.shape[0]
        every = [
            grids if name == self.level else torch.full((n, *shape), self.fill.get(name, 0), dtype=torch.int64)
            for name, shape in self.model.latent_shapes.items()
        ]
        return self.model.decode_indices(every).clamp(0, 1)
