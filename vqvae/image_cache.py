"""A folder of images decoded once into a memory-mapped uint8 file, so that training reads each batch
from disk rather than holding the data set in memory: a folder of a million images trains in the
memory of a few batches.

The cache lies beside the emoji's ($VQVAE_CACHE, else $XDG_CACHE_HOME/vqvae-explorer, else
~/.cache/vqvae-explorer), under folders/, named by a fingerprint of the folder's files (each
one's path, size and modification time), so a changed folder is decoded again. The pixels are
written to a temporary file and renamed, and the description (count, size, labels) written last,
so a half-written cache is never read. They are stored as the in-memory loader (data.py) holds
them before scaling: RGB, resized to the smallest side where the sizes differ; `StreamedImages`
then scales and fits rows to the model exactly as the loader does the whole set.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL
import torch
from PIL import Image

from .atomic import atomic_write_bytes, atomic_write_json
from .emoji import cache_folder
from .errors import CheckpointError, DataError
from .fitting import fit_images
from .sources import MAX_STREAMED_FILES, ImagesShape, folder_shape, image_files, open_image

log = logging.getLogger(__name__)

FORMAT = 1
READ_ROWS = 256  # images read and fitted at a time: the stored size as float32 is held for these alone


def read_image(path: Path, folder: Path, size: tuple[int, int]) -> np.ndarray:
    """One image file as (H, W, 3) uint8 RGB, resized to `size` (H, W) where it differs."""
    with open_image(path, folder) as image:
        pixels = np.asarray(image.convert("RGB"))
        if pixels.shape[:2] != size:
            pixels = np.asarray(Image.fromarray(pixels).resize(size[::-1], Image.BILINEAR))
    return pixels


def folder_labels(folder: Path, files: list[Path]) -> tuple[np.ndarray, list[str]]:
    """A label per file from its first subfolder (-1 for a file at the top), and the class names in order."""
    parts = [f.relative_to(folder).parts for f in files]
    class_names = sorted({p[0] for p in parts if len(p) > 1})
    label_of = {name: i for i, name in enumerate(class_names)}
    return np.array([label_of[p[0]] if len(p) > 1 else -1 for p in parts], dtype=np.int64), class_names


@dataclass
class FolderCache:
    pixels: np.ndarray  # (N, H, W, 3) uint8, memory-mapped read-only
    labels: np.ndarray  # (N,) int64; -1 where unlabelled
    class_names: list[str]
    path: Path  # the .npy file the pixels are mapped from


def cached_folder(folder: Path, cache: Path | None = None) -> FolderCache:
    """The folder's images from their cache, decoded into it first if it holds none for these files."""
    files = image_files(folder, MAX_STREAMED_FILES)
    base = (cache or cache_folder()) / "folders" / _fingerprint(folder, files)
    found = _read(base)
    if found is None:
        _write(base, folder, files)
        found = _read(base)
        if found is None:
            raise DataError(f"the cache of {folder} in {base.parent} could not be read back after it was written")
    return found


def _fingerprint(folder: Path, files: list[Path]) -> str:
    digest = hashlib.sha256(f"format {FORMAT}\npillow {PIL.__version__}\n{folder.resolve()}\n".encode())
    for path in files:
        info = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def _read(base: Path) -> FolderCache | None:
    """The cache at `base`, or None when there is none or it is damaged in any way (it is decoded again)."""
    described, pixels = base.with_suffix(".json"), base.with_suffix(".npy")
    if not described.is_file():
        return None
    try:
        import json

        description = json.loads(described.read_text())
        images = np.load(pixels, mmap_mode="r", allow_pickle=False)
        labels = np.load(base.with_suffix(".labels.npy"), allow_pickle=False)
        count, height, width = description["count"], description["height"], description["width"]
        if description["format"] != FORMAT or images.dtype != np.uint8 or images.shape != (count, height, width, 3):
            raise ValueError(f"pixels of {images.shape} {images.dtype}")
        if labels.dtype != np.int64 or labels.shape != (count,):
            raise ValueError(f"labels of {labels.shape} {labels.dtype}")
        return FolderCache(images, labels, [str(name) for name in description["class_names"]], pixels)
    except Exception as error:  # a damaged cache may fail in any way: each means "decode again"
        log.warning("decoding the folder again: its cache %s is damaged (%s)", base, error)
        return None


def _write(base: Path, folder: Path, files: list[Path]) -> None:
    """Decode every image, one at a time, into the memory-mapped file; then its labels; its description last."""
    shape = folder_shape(folder, files, in_memory=False)
    labels, class_names = folder_labels(folder, files)
    temp = base.with_name(f"{base.name}.{os.getpid()}.tmp.npy")
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.lib.format.open_memmap(temp, mode="w+", dtype=np.uint8, shape=_stored(shape))
        for i, file in enumerate(files):
            pixels[i] = read_image(file, folder, (shape.height, shape.width))
        pixels.flush()
        del pixels
        os.replace(temp, base.with_suffix(".npy"))
        buffer = io.BytesIO()
        np.save(buffer, labels, allow_pickle=False)
        atomic_write_bytes(base.with_suffix(".labels.npy"), buffer.getvalue())
        description = {"format": FORMAT, "count": shape.count, "height": shape.height, "width": shape.width}
        atomic_write_json(base.with_suffix(".json"), description | {"class_names": class_names, "folder": str(folder)})
    except (OSError, CheckpointError) as error:
        raise DataError(f"{folder} could not be cached in {base.parent} for streaming: {error}") from error
    finally:
        temp.unlink(missing_ok=True)
    log.info("cached %d images of %s in %s", shape.count, folder, base.parent)


def _stored(shape: ImagesShape) -> tuple[int, int, int, int]:
    return (shape.count, shape.height, shape.width, 3)


class StreamedImages:
    """The images of a FolderCache (some of its rows), read when indexed: float (B, C, S, S) in [0, 1] at the
    model's size and channels, the very numbers the in-memory loader gives for those rows.

    Looks like the (N, C, S, S) tensor it stands for where training uses one: len, shape, and indexing by
    a tensor of rows or a slice. Pickled, it keeps the file's path, not the pixels (a DataLoader worker
    started by spawn maps the file again)."""

    def __init__(self, cache_file: Path, rows: np.ndarray, image_size: int, channels: int):
        self.cache_file, self.rows = Path(cache_file), rows
        self.image_size, self.channels = image_size, channels
        self.pixels = np.load(self.cache_file, mmap_mode="r", allow_pickle=False)  # (N, H, W, 3) uint8

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self.rows), self.channels, self.image_size, self.image_size))

    def select(self, rows: torch.Tensor) -> StreamedImages:
        """The images at these positions, still on disk."""
        return StreamedImages(self.cache_file, self.rows[np.asarray(rows)], self.image_size, self.channels)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        chosen = self.rows[index if isinstance(index, slice) else np.asarray(index)]
        pieces = [self._fitted(chosen[i : i + READ_ROWS]) for i in range(0, len(chosen), READ_ROWS)]
        return torch.cat(pieces) if pieces else torch.empty(0, self.channels, self.image_size, self.image_size)

    def _fitted(self, rows: np.ndarray) -> torch.Tensor:
        pixels = torch.from_numpy(np.ascontiguousarray(self.pixels[rows]))  # (B, H, W, 3) uint8
        images = pixels.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)  # (B, 3, H, W) in [0, 1]
        return fit_images(images, self.image_size, self.channels)

    def __getstate__(self) -> dict:
        return {key: value for key, value in vars(self).items() if key != "pixels"}

    def __setstate__(self, state: dict) -> None:
        vars(self).update(state)
        self.pixels = np.load(self.cache_file, mmap_mode="r", allow_pickle=False)
