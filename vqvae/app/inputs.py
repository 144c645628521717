"""User images in: decode an uploaded file safely and fit any picture to a model's input.

Only the formats below are decoded, the pixel count is checked from the header before any
pixel is read, and a decompression bomb is an error, not a warning. Whatever a damaged file
makes Pillow's parsers raise comes out as a DataError with a short message. How a picture is
fitted to a model (and what the pages call its pictures) is one decision, its Fitting.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..emoji import on_white_square
from ..errors import DataError

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
MAX_PIXELS = 4096 * 4096
MAX_FILE_BYTES = 32 * 1024**2
INK_THRESHOLD = 0.2  # a pixel this far from the background counts as part of the drawing
MNIST_BOX = 20 / 28  # MNIST digits fill a 20x20 box centred in 28x28
# What Pillow's parsers raise on damaged files besides OSError (found by tests/test_inputs_fuzz.py)
DAMAGED = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError, ZeroDivisionError)

# Pillow's own bomb check, for every decoder in this process: Gradio opens the sketchpad's image
# itself with warnings ignored, so its error (at twice this) is what stops a bomb there.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


def read_image(path: str | Path) -> np.ndarray:
    """An uploaded image file -> (H, W, 3) uint8 RGB, transparent parts on white. Raises DataError."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DataError(f"cannot read the uploaded file: {error.strerror}") from error
    if size == 0:
        raise DataError("the uploaded file is empty")
    if size > MAX_FILE_BYTES:
        raise DataError(f"the uploaded file is {size / 1024**2:.0f} MB; at most {MAX_FILE_BYTES // 1024**2} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=FORMATS) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise DataError(
                        f"the image is {image.width}x{image.height}; at most {MAX_PIXELS:,} pixels are accepted"
                    )
                image.seek(0)  # the first frame of an animation
                image.load()
                return to_rgb(ImageOps.exif_transpose(image))
    except DataError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"the image has more than {MAX_PIXELS:,} pixels; it is refused before decoding") from error
    except UnidentifiedImageError as error:
        raise DataError(f"not an image this app reads ({', '.join(FORMATS)}): {type(error).__name__}") from error
    except MemoryError as error:
        raise DataError("the image is too large to decode") from error
    except DAMAGED as error:
        raise DataError(f"the image file is damaged or truncated: {error}") from error


def to_rgb(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8, transparent parts (alpha, or a tRNS colour) over white.

    16-bit greys keep their brightness (v / 257); 32-bit integer and float greys, which have
    no full scale, are stretched over their range.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = _wide_to_grey(image)
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))


def _wide_to_grey(image: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float grey image -> 8-bit "L" (or "LA" when one value is transparent)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        grey = values / 65535
    else:
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
        low, high = float(values.min()), float(values.max())
        grey = np.zeros_like(values) if high == low else (values - low) / (high - low)
    grey_image = Image.fromarray((grey * 255).round().astype(np.uint8))
    transparent = image.info.get("transparency")
    if isinstance(transparent, int):
        grey_image.putalpha(Image.fromarray(np.where(values == transparent, 0, 255).astype(np.uint8)))
    return grey_image


def from_array(array: np.ndarray) -> np.ndarray:
    """A picture as an array (H, W), (H, W, 1/3/4) of uint8 or floats in [0, 1] -> (H, W, 3) uint8."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise DataError(f"expected an image of shape (H, W) or (H, W, 1/3/4); got {array.shape}")
    if array.shape[0] * array.shape[1] > MAX_PIXELS:
        raise DataError(f"the image has more than {MAX_PIXELS:,} pixels")
    if array.dtype != np.uint8:
        array = np.clip(np.nan_to_num(array.astype(np.float64)) * 255, 0, 255).round().astype(np.uint8)
    if array.shape[-1] == 4:
        return to_rgb(Image.fromarray(array, "RGBA"))
    return np.repeat(array, 3, axis=-1) if array.shape[-1] == 1 else array


DIGIT = "digit"  # 1 channel, classes "0".."9": MNIST's light strokes on black, in a 20x20 box
GREY = "grey"  # another grey model (Fashion-MNIST): light things on black that fill the frame
COLOUR = "colour"  # a 3-channel model: whole pictures, drawn on white
DIGIT_NAMES = tuple(str(i) for i in range(10))


@dataclass(frozen=True)
class Fitting:
    """How a person's picture is fitted to a model, and what the pages call the model's pictures: one
    decision, made from what the model was trained on (its channels and class names).

    A digit model gets MNIST's treatment and the word "digit"; a grey model gets the picture's content
    (inverted from a light background) filling the frame; a colour model gets the whole picture on white.
    """

    kind: str  # DIGIT, GREY or COLOUR

    def __post_init__(self) -> None:
        if self.kind not in (DIGIT, GREY, COLOUR):
            raise ValueError(f"a fitting is {DIGIT}, {GREY} or {COLOUR}, not {self.kind!r}")

    @property
    def channels(self) -> int:
        return 3 if self.kind == COLOUR else 1

    @property
    def box(self) -> float:
        """The share of the side a grey picture's content fills, its longer side."""
        return MNIST_BOX if self.kind == DIGIT else 1.0

    @property
    def noun(self) -> str:
        """What the pages call one of the model's pictures."""
        return "digit" if self.kind == DIGIT else "image"

    @property
    def nouns(self) -> str:
        return f"{self.noun}s"

    @property
    def a_noun(self) -> str:
        return f"a {self.noun}" if self.kind == DIGIT else f"an {self.noun}"


def fitting_for(channels: int, class_names: Sequence[str]) -> Fitting:
    """The Fitting of a model with `channels` (1 or 3) trained on classes `class_names` (none: unlabelled)."""
    if channels == 3:
        return Fitting(COLOUR)
    return Fitting(DIGIT if tuple(class_names) == DIGIT_NAMES else GREY)


def _centre_content(grey: np.ndarray, size: int, box: float) -> np.ndarray:
    """Light-on-dark grey (H, W) in [0, 1]: crop to the content, fit its longer side to `box` of the side
    (aspect kept), centre it on black."""
    ink = np.argwhere(grey > INK_THRESHOLD)
    if len(ink) == 0:
        picture = Image.fromarray((grey * 255).astype(np.uint8))
        return np.asarray(picture.resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    (top, left), (bottom, right) = ink.min(0), ink.max(0) + 1
    crop = Image.fromarray((grey[top:bottom, left:right] * 255).round().astype(np.uint8))
    side = max(1, round(size * box))
    scale = side / max(crop.width, crop.height)
    crop = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))), Image.LANCZOS)
    canvas = Image.new("L", (size, size), 0)
    canvas.paste(crop, ((size - crop.width) // 2, (size - crop.height) // 2))
    return np.asarray(canvas, dtype=np.float32) / 255


def _on_white_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> the whole picture, aspect kept, centred on a white square of (S, S, 3) in [0, 1]:
    composed as the emoji source composes its pictures."""
    return on_white_square(Image.fromarray(rgb).convert("RGBA"), size).astype(np.float32) / 255


def fit_image(rgb: np.ndarray, image_size: int, fitting: Fitting) -> np.ndarray:
    """(H, W, 3) uint8 -> (1, C, S, S) float32 in [0, 1] as the model was trained (see Fitting).

    Grey models expect light content on black: a picture with a light background is inverted,
    then its content cropped, fitted into the model's box and centred. Colour models get the whole
    picture, composed on white in a square (nothing cut off), resized.
    """
    if fitting.kind == COLOUR:
        fitted = _on_white_square(rgb, image_size).transpose(2, 0, 1)  # (S, S, 3) -> (3, S, S)
    else:
        grey = rgb.astype(np.float32).mean(-1) / 255
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        if border.mean() > 0.5:
            grey = 1.0 - grey
        fitted = _centre_content(grey, image_size, fitting.box)[None]  # (1, S, S)
    return np.ascontiguousarray(fitted.clip(0, 1)[None], dtype=np.float32)
