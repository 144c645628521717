"""Image grids and conversions on numpy/Pillow (the project has no torchvision)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """images: (N, C, H, W) float in [0, 1] (clamped) -> (N, H, W, C) uint8."""
    array = images.detach().clamp(0, 1).mul(255).round().to(torch.uint8)
    return array.permute(0, 2, 3, 1).cpu().numpy()  # (N, C, H, W) -> (N, H, W, C)


def grid(images: torch.Tensor, columns: int, padding: int = 2, scale: int = 1, background: int = 255) -> Image.Image:
    """Tile images (N, C, H, W) in [0, 1] into one picture, `columns` to a row, each scaled up `scale` times."""
    tiles = to_uint8(images)
    n, h, w, c = tiles.shape
    rows = -(-n // columns)
    canvas = np.full((padding + rows * (h + padding), padding + columns * (w + padding), c), background, np.uint8)
    for i, tile in enumerate(tiles):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        canvas[top : top + h, left : left + w] = tile
    picture = Image.fromarray(canvas[..., 0] if c == 1 else canvas)
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST) if scale > 1 else picture
