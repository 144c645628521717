"""Image grids and conversions on numpy/Pillow (the project has no torchvision)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # tensors come in from the model; this module itself needs no torch
    import torch


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """images: (N, C, H, W) float in [0, 1] (clamped), or already uint8 -> (N, H, W, C) uint8."""
    if images.dtype.is_floating_point:
        images = images.detach().clamp(0, 1).mul(255).round().byte()
    return images.permute(0, 2, 3, 1).cpu().numpy()  # (N, C, H, W) -> (N, H, W, C)


def mosaic(tiles: np.ndarray, columns: int, padding: int = 2, background: int = 255) -> np.ndarray:
    """Tile uint8 images (N, H, W, C), `columns` to a row, into one (H', W', C) picture."""
    n, h, w, c = tiles.shape
    columns = max(1, min(columns, n))
    rows = -(-n // columns)
    canvas = np.full((padding + rows * (h + padding), padding + columns * (w + padding), c), background, np.uint8)
    for i, tile in enumerate(tiles):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        canvas[top : top + h, left : left + w] = tile
    return canvas


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """(H, W, C) uint8 -> (H*s, W*s) grey or (H*s, W*s, 3) colour, each pixel a s x s block (no blur)."""
    image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1) if scale > 1 else image
    return image[..., 0] if image.shape[-1] == 1 else image


def png_bytes(image: np.ndarray) -> bytes:
    """(H, W) or (H, W, C) uint8 -> the bytes of a PNG file."""
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[-1] == 1 else image).save(buffer, "PNG")
    return buffer.getvalue()


def grid(images: torch.Tensor, columns: int, padding: int = 2, scale: int = 1, background: int = 255) -> Image.Image:
    """Tile images (N, C, H, W) in [0, 1] into one picture, `columns` to a row, each scaled up `scale` times."""
    return Image.fromarray(enlarge(mosaic(to_uint8(images), columns, padding, background), scale))
