"""Image grids and conversions on numpy/Pillow (the project has no torchvision)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

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


MARK = (213, 94, 0)  # the chosen tile's frame and label: Okabe-Ito vermillion, told apart by colour-blind eyes too
FRAME = 4  # pixels of frame around each tile: the page's white, or MARK for the chosen one
GAP = 6  # pixels between one cell and the next


@dataclass(frozen=True)
class LabelledTiles:
    """Tiles in a grid, each with a label in a strip under it; where each cell lies, to map a click back."""

    image: np.ndarray  # (H, W, 3) uint8
    columns: int
    width: int  # pixels per cell across: frame, tile, frame, gap
    height: int  # pixels per cell down: frame, tile, frame, label strip, gap
    count: int

    def slot_at(self, x: float, y: float) -> int | None:
        """The tile whose cell holds pixel (x, y), or None beyond the tiles."""
        return tile_at(x, y, self.columns, self.width, self.height, self.count)


def tile_at(x: float, y: float, columns: int, width: int, height: int, count: int) -> int | None:
    """Which cell of a LabelledTiles grid pixel (x, y) lies in (a tile's frame, label strip and the gap after
    it count as the tile's), or None beyond the tiles."""
    column, row = int(x) // width, int(y) // height
    slot = row * columns + column
    return slot if x >= 0 and y >= 0 and column < columns and slot < count else None


def labelled_tiles(
    tiles: np.ndarray, labels: Sequence[str], columns: int, scale: int = 1, marked: int | None = None
) -> LabelledTiles:
    """Tiles (N, t, t, C) uint8, each enlarged `scale` times without blur, `columns` to a row, with its label
    written in a strip under it, never over the picture; tile `marked` framed and labelled in MARK."""
    n, t = tiles.shape[:2]
    side = t * scale
    font = ImageFont.load_default(size=max(11, min(18, side // 4)))
    strip = int(font.size) + 8
    width, height = side + 2 * FRAME + GAP, side + 2 * FRAME + strip + GAP
    columns = max(1, min(columns, n))
    canvas = Image.new("RGB", (columns * width - GAP, -(-n // columns) * height - GAP), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        left, top = (i % columns) * width, (i // columns) * height
        if i == marked:
            draw.rectangle((left, top, left + side + 2 * FRAME - 1, top + side + 2 * FRAME + strip - 1), fill=MARK)
        picture = enlarge(tile, scale)
        canvas.paste(Image.fromarray(picture).convert("RGB"), (left + FRAME, top + FRAME))
        centre = (left + FRAME + side / 2, top + 2 * FRAME + side + strip / 2 - 2)
        draw.text(centre, label, fill="white" if i == marked else (40, 40, 40), font=font, anchor="mm")
    return LabelledTiles(np.asarray(canvas), columns, width, height, n)
