"""CIFAR-10's binary distribution (Krizhevsky 2009): the files of `cifar10:PATH`, listed and read.

PATH is `cifar-10-binary.tar.gz` as distributed (a gzipped tar of `cifar-10-batches-bin/`) or the
folder it unpacks to. Each `data_batch_N.bin` (train) and `test_batch.bin` (test) is a run of
3,073-byte records: a label byte 0..9, then 1,024 red, 1,024 green and 1,024 blue bytes, each
plane 32 x 32 row-major. `batches.meta.txt` names the classes, one a line. The pickled "python
version" of the same data is never read: unpickling a downloaded file could run code.

An archive is read in place, member by member through tarfile's `extractfile`, and never
unpacked: a member counts by its base name alone (its path is never used on disk), links,
devices and folders in it are passed over, and every size is taken from the headers before
any data is read, so sources.py can refuse a dataset too large for memory first.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import re
import stat
import tarfile
import zlib
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import DataError

IMAGE_DIMS = (3, 32, 32)  # (C, H, W): red, green and blue planes, each row-major
RECORD_BYTES = 1 + 3 * 32 * 32  # a label byte, then the pixels
NUM_CLASSES = 10
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TRAIN_FILE = re.compile(r"data_batch_([0-9]+)\.bin")
TEST_FILE = "test_batch.bin"
META_FILE = "batches.meta.txt"
MAX_META_BYTES = 64 * 1024  # ten class names, one a line
MAX_MEMBERS = 1000  # entries listed in an archive; CIFAR-10's has 9
MAX_READ_BYTES = 32 * 1024**2  # the most one read asks for, of a batch file or of a tar header
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class BatchFile:
    """One file of the distribution: a batch of records, or the class names."""

    name: str  # its base name, e.g. data_batch_1.bin
    what: str  # how a message names it
    size: int  # in bytes, from the file system or the tar header
    order: int  # its place in the archive: reading in this order never rewinds the gzip stream

    @property
    def records(self) -> int:
        return self.size // RECORD_BYTES


@dataclass(frozen=True)
class Placement:
    """Where a batch file's records go: the part (train or test) and the row of its first record."""

    file: BatchFile
    part: str
    row: int


class Cifar10:
    """The files of one `cifar10:` source, listed; subclasses say how each file is opened."""

    def __init__(self, path: Path, files: Iterable[BatchFile], max_file_bytes: int):
        self.path = path
        self.train, self.test, self.meta = _roles(path, list(files), max_file_bytes)

    @property
    def counts(self) -> tuple[int, int]:
        """(train, test) images, from the files' sizes alone."""
        return sum(f.records for f in self.train), self.test.records

    def placements(self) -> list[Placement]:
        """Every batch file with where its records go, in the order the files are stored."""
        rows, found = 0, [Placement(self.test, "test", 0)]
        for file in self.train:  # by their number: data_batch_1 first
            found.append(Placement(file, "train", rows))
            rows += file.records
        return sorted(found, key=lambda p: p.file.order)

    def records(self, file: BatchFile, per_read: int) -> Iterator[bytes]:
        """The records of a batch file, at most `per_read` of them at a time, each read whole. A file that
        ends before its listed size, or a label byte over 9, is a DataError naming the file."""
        per_read = max(1, min(per_read, MAX_READ_BYTES // RECORD_BYTES))
        with self._open(file) as f:
            for start in range(0, file.records, per_read):
                count = min(per_read, file.records - start)
                chunk = f.read(count * RECORD_BYTES)
                if len(chunk) != count * RECORD_BYTES:
                    raise DataError(f"{file.what} ends early: fewer bytes than the {file.size:,} listed")
                _check_labels(chunk, file, start)
                yield chunk
            if f.read(1):
                raise DataError(f"{file.what} holds more bytes than the {file.size:,} listed")

    def class_names(self) -> list[str]:
        """From batches.meta.txt when it names exactly ten classes, one a line; else CIFAR-10's own."""
        if self.meta is None:
            return list(CLASSES)
        with self._open(self.meta) as f:
            text = f.read(self.meta.size)
        try:
            names = [line.strip() for line in text.decode("utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            return list(CLASSES)
        return names if len(names) == NUM_CLASSES else list(CLASSES)

    def _open(self, file: BatchFile) -> AbstractContextManager[BinaryIO]:
        """The file's bytes, from its first."""
        raise NotImplementedError


def _roles(
    path: Path, files: list[BatchFile], max_file_bytes: int
) -> tuple[list[BatchFile], BatchFile, BatchFile | None]:
    """(train files by number, the test file, the class names file or None); each checked by its size."""
    for file in files:
        _check_size(file, max_file_bytes)
    roles = [_role(f.name) for f in files]
    twice = sorted({role for role in roles if roles.count(role) > 1})
    if twice:
        raise DataError(f"{path} holds {twice[0]} more than once")
    train = sorted((f for f in files if TRAIN_FILE.fullmatch(f.name)), key=lambda f: _number(f.name))
    test = next((f for f in files if f.name == TEST_FILE), None)
    if not train or test is None:
        missing = "data_batch_*.bin" if not train else TEST_FILE
        raise DataError(
            f"no {missing} in {path}: CIFAR-10's binary distribution holds data_batch_1.bin to data_batch_5.bin "
            f"and {TEST_FILE} (cifar-10-binary.tar.gz, or the folder it unpacks to; the pickled python version "
            "is not read)"
        )
    return train, test, next((f for f in files if f.name == META_FILE), None)


def _role(name: str) -> str:
    """What a file is for: its name, a batch's with its number as a number (data_batch_01.bin is batch 1)."""
    return f"data_batch_{_number(name)}.bin" if TRAIN_FILE.fullmatch(name) else name


def _number(name: str) -> int:
    return int(TRAIN_FILE.fullmatch(name).group(1))


def _check_size(file: BatchFile, max_file_bytes: int) -> None:
    limit = MAX_META_BYTES if file.name == META_FILE else max_file_bytes
    if file.size > limit:
        raise DataError(f"{file.what} is {file.size:,} bytes; at most {limit:,} are read from one file")
    if file.name == META_FILE:
        return
    if file.size == 0:
        raise DataError(f"{file.what} is empty; it should hold 3,073-byte records")
    if file.size % RECORD_BYTES:
        raise DataError(
            f"{file.what} is {file.size:,} bytes, not a whole number of {RECORD_BYTES:,}-byte records "
            "(a label byte and 3 x 32 x 32 pixels each): truncated, or not a CIFAR-10 batch"
        )


def _check_labels(chunk: bytes, file: BatchFile, first: int) -> None:
    labels = chunk[::RECORD_BYTES]  # the first byte of each record
    top = max(labels)
    if top >= NUM_CLASSES:
        record = first + labels.index(top)
        raise DataError(f"{file.what}: record {record:,} has label {top}; CIFAR-10's labels are 0 to 9")


class _Folder(Cifar10):
    """The extracted folder: its plain files (a link is passed over, as every folder source does)."""

    def __init__(self, path: Path, max_file_bytes: int):
        files = []
        with os.scandir(path) as entries:
            for order, entry in enumerate(sorted(entries, key=lambda e: e.name)):
                if _wanted(entry.name) and entry.is_file(follow_symlinks=False):
                    files.append(
                        BatchFile(entry.name, str(path / entry.name), entry.stat(follow_symlinks=False).st_size, order)
                    )
        super().__init__(path, files, max_file_bytes)

    @contextmanager
    def _open(self, file: BatchFile) -> Iterator[BinaryIO]:
        try:
            fd = os.open(Path(self.path, file.name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as error:
            raise DataError(f"cannot read {file.what}: {error.strerror}") from error
        with open(fd, "rb") as f:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size != file.size:
                raise DataError(f"{file.what} changed while it was read")
            yield f


class _Archive(Cifar10):
    """The .tar.gz (or a plain .tar), read where it lies: members through extractfile, never unpacked."""

    def __init__(self, path: Path, tar: tarfile.TarFile, max_file_bytes: int):
        self.tar = tar
        self.members: dict[int, tarfile.TarInfo] = {}
        files = []
        for order, member in enumerate(_listed(tar, path)):
            name = posixpath.basename(member.name)  # matched by name only; never a path on disk
            what = f"{name} in {path}"
            if member.size > max(max_file_bytes, MAX_META_BYTES):  # refused before tarfile skips past it
                raise DataError(f"{what} is {member.size:,} bytes; at most {max_file_bytes:,} are read from one file")
            if member.isreg() and _wanted(name):
                self.members[order] = member
                files.append(BatchFile(name, what, member.size, order))
        self.end = tar.offset  # where the archive's last entry ends
        super().__init__(path, files, max_file_bytes)

    @contextmanager
    def _open(self, file: BatchFile) -> Iterator[BinaryIO]:
        f = self.tar.extractfile(self.members[file.order])
        with f:
            yield f


def _wanted(name: str) -> bool:
    return name in (TEST_FILE, META_FILE) or TRAIN_FILE.fullmatch(name) is not None


def _listed(tar: tarfile.TarFile, path: Path) -> Iterator[tarfile.TarInfo]:
    """The archive's entries, header by header, at most MAX_MEMBERS of them."""
    for count, member in enumerate(tar, start=1):
        if count > MAX_MEMBERS:
            raise DataError(f"{path} holds more than {MAX_MEMBERS:,} entries; CIFAR-10's archive holds 9")
        yield member


def _read_to_end(stream: BinaryIO, end: int, path: Path) -> None:
    """Read a gzip stream on to its end, where gzip checks the CRC of everything it unpacked since its
    start: a byte changed in stored (uncompressed) data shows only there. The stream may run on past the
    tar archive's `end` by MAX_READ_BYTES at most (the distribution pads it by less than 10 KiB)."""
    while stream.read(1024**2):
        if stream.tell() > end + MAX_READ_BYTES:
            raise DataError(f"{path} runs on for more than {MAX_READ_BYTES:,} bytes past the end of its tar archive")


class _BoundedReads:
    """A file whose every read asks for at most MAX_READ_BYTES. tarfile reads a pax or GNU long-name
    header whole, so a crafted header claiming gigabytes is refused here instead of read into memory."""

    def __init__(self, f: BinaryIO, path: Path):
        self.f, self.path = f, path

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > MAX_READ_BYTES:
            raise DataError(f"{self.path} has a tar header or member too large to read")
        return self.f.read(size)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.f.seek(offset, whence)

    def tell(self) -> int:
        return self.f.tell()


@contextmanager
def open_cifar10(path: Path, max_file_bytes: int) -> Iterator[Cifar10]:
    """The files of a `cifar10:` source, from the folder or from the archive's headers; a batch file over
    `max_file_bytes` is refused from its size. A corrupt gzip or tar, here or while the caller reads on,
    is a DataError naming PATH."""
    if path.is_dir():
        yield _Folder(path, max_file_bytes)
        return
    if not path.is_file():
        raise DataError(f"{path} is neither a folder nor a file")
    try:
        with open(path, "rb") as raw:
            compressed = raw.read(len(GZIP_MAGIC)) == GZIP_MAGIC
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) if compressed else raw as stream:
                with tarfile.open(fileobj=_BoundedReads(stream, path), mode="r:") as tar:
                    cifar = _Archive(path, tar, max_file_bytes)
                    yield cifar
                if compressed:
                    _read_to_end(stream, cifar.end, path)
    except (OSError, EOFError, zlib.error, tarfile.TarError) as error:
        raise DataError(f"cannot read {path} as CIFAR-10's .tar.gz: {error}") from error
