"""`--data cifar10:PATH`: CIFAR-10's binary distribution, from the .tar.gz as downloaded or from its folder.

Every file here is written in the distribution's exact byte layout (a label byte, then the red, green
and blue planes, each 32 x 32 row-major), five small train batches and a test batch, with pixel
values that tell channel, row and column apart. Archives are read where they lie: a member named
with `..` or an absolute path is read by its base name and nothing is ever written.
"""

import dataclasses
import gzip
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae import cifar, sources
from vqvae.app.exposure import REFUSED_PATH, allowed_source
from vqvae.checkpoint import load_checkpoint
from vqvae.cifar import CLASSES, RECORD_BYTES
from vqvae.config import preset
from vqvae.data import load_source, load_split
from vqvae.errors import DataError, TrainingError
from vqvae.sources import check_source, count_images
from vqvae.train import train_vqvae

TRAIN_SIZES = (20, 20, 20, 20, 20)
TEST_SIZE = 10
# The official archive's member order, which is not the batches' order.
STORED = ["data_batch_1.bin", "batches.meta.txt", "data_batch_3.bin", "data_batch_4.bin", "test_batch.bin"]
STORED += ["readme.html", "data_batch_2.bin", "data_batch_5.bin"]
NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def pixel(image: int, channel: int, row: int, column: int) -> int:
    """A value that changes differently along each axis, so a swap of any two shows."""
    return (31 * image + 101 * channel + 7 * row + 3 * column) % 256


def label(image: int) -> int:
    return (3 * image + 1) % 10


def record(image: int) -> bytes:
    """One record exactly as the distribution lays it out: the label, then each plane row by row."""
    planes = [pixel(image, c, y, x) for c in range(3) for y in range(32) for x in range(32)]
    return bytes([label(image)] + planes)


def batch(first: int, count: int) -> bytes:
    return b"".join(record(image) for image in range(first, first + count))


def expected_images(first: int, count: int) -> torch.Tensor:
    """The loader's answer for images first..first+count, built from `pixel` and not from the bytes."""
    n, c, y, x = np.meshgrid(np.arange(first, first + count), *map(np.arange, (3, 32, 32)), indexing="ij")
    return torch.from_numpy(((31 * n + 101 * c + 7 * y + 3 * x) % 256 / np.float32(255)).astype(np.float32))


TEST_FIRST = 1000  # the test images are numbered apart from the train ones


def write_folder(folder: Path, meta: str | None = "\n".join(NAMES) + "\n\n") -> Path:
    """cifar-10-batches-bin/ as the archive unpacks: five train batches, the test batch, the class names."""
    folder.mkdir(parents=True, exist_ok=True)
    first = 0
    for number, size in enumerate(TRAIN_SIZES, start=1):
        (folder / f"data_batch_{number}.bin").write_bytes(batch(first, size))
        first += size
    (folder / "test_batch.bin").write_bytes(batch(TEST_FIRST, TEST_SIZE))
    if meta is not None:
        (folder / "batches.meta.txt").write_text(meta)
    (folder / "readme.html").write_text("<html>see the web page</html>")
    return folder


def entry(name: str, **header) -> tarfile.TarInfo:
    """A tar header: `name`, and the fields given (type, linkname, size, ...)."""
    info = tarfile.TarInfo(name)
    for key, value in header.items():
        setattr(info, key, value)
    return info


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    archive.addfile(entry(name, size=len(data)), io.BytesIO(data))


def write_archive(path: Path, folder: Path, names=None, prefix: str = "cifar-10-batches-bin/", extra=()) -> Path:
    """A .tar.gz of the folder's files, in the official order, under `prefix`; `names` renames members."""
    names = names or {}
    with tarfile.open(path, "w:gz") as archive:
        archive.addfile(entry(prefix.rstrip("/"), type=tarfile.DIRTYPE, mode=0o755))
        for name in STORED:
            if (folder / name).exists():
                add(archive, names.get(name, prefix + name), (folder / name).read_bytes())
        for member in extra:  # a TarInfo, or a TarInfo and its data
            info, data = member if isinstance(member, tuple) else (member, b"")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def folder(tmp_path):
    return write_folder(tmp_path / "cifar-10-batches-bin")


@pytest.fixture
def archive(tmp_path, folder):
    return write_archive(tmp_path / "cifar-10-binary.tar.gz", folder)


def refused(source: str, *messages: str) -> str:
    """Both the check before a run and the loader refuse `source` with one line saying each message."""
    for attempt in (lambda: check_source(source, 1), lambda: load_source(source)):
        with pytest.raises(DataError) as error:
            attempt()
        text = str(error.value)
        assert "\n" not in text
        for message in messages:
            assert message in text, text
    return text


def files_under(folder: Path) -> set[Path]:
    return {path for path in folder.rglob("*")}


# --- what it reads


def test_the_folder_and_the_archive_give_the_same_split_pixel_for_pixel(folder, archive):
    from_folder, from_archive = load_source(f"cifar10:{folder}"), load_source(f"cifar10:{archive}")
    for loaded in (from_folder, from_archive):
        assert loaded.train.images.shape == (100, 3, 32, 32) and loaded.test.images.shape == (10, 3, 32, 32)
        assert loaded.train.images.dtype == torch.float32
        assert torch.equal(loaded.train.images, expected_images(0, 100))  # batches 1..5 in their number's order
        assert torch.equal(loaded.test.images, expected_images(TEST_FIRST, TEST_SIZE))
        assert loaded.train.labels.tolist() == [label(i) for i in range(100)]
        assert loaded.test.labels.tolist() == [label(TEST_FIRST + i) for i in range(TEST_SIZE)]
        assert loaded.train.class_names == loaded.test.class_names == NAMES
    for part in ("train", "test"):
        assert torch.equal(getattr(from_folder, part).images, getattr(from_archive, part).images)
        assert torch.equal(getattr(from_folder, part).labels, getattr(from_archive, part).labels)


def test_an_archive_is_read_in_the_order_it_is_stored(archive):
    with sources.open_cifar10_source(archive) as listed:  # so its gzip stream is unpacked once more, not once a file
        assert [placed.file.name for placed in listed.placements()] == [n for n in STORED if n.endswith(".bin")]
        assert [(placed.part, placed.row) for placed in listed.placements()][:2] == [("train", 0), ("train", 40)]


def test_each_record_is_a_label_then_red_green_and_blue_planes_row_by_row(tmp_path):
    folder = write_folder(tmp_path / "bin")
    records = bytearray(RECORD_BYTES * 2)
    records[0], records[RECORD_BYTES] = 7, 2  # the two labels
    records[1 + 0 * 1024 + 0 * 32 + 1] = 255  # image 0: red, row 0, column 1
    records[1 + 1 * 1024 + 2 * 32 + 0] = 51  # image 0: green, row 2, column 0
    records[RECORD_BYTES + 1 + 2 * 1024 + 31 * 32 + 30] = 102  # image 1: blue, row 31, column 30
    (folder / "test_batch.bin").write_bytes(bytes(records))
    test = load_source(f"cifar10:{folder}").test
    assert test.labels.tolist() == [7, 2]
    lit = torch.nonzero(test.images).tolist()
    assert lit == [[0, 0, 0, 1], [0, 1, 2, 0], [1, 2, 31, 30]]
    assert [round(float(test.images[tuple(at)]) * 255) for at in lit] == [255, 51, 102]


def test_batches_are_taken_by_number_not_by_name(tmp_path):
    folder = write_folder(tmp_path / "bin")
    (folder / "data_batch_10.bin").write_bytes(batch(500, 3))  # sorts between 1 and 2 as a name
    train = load_source(f"cifar10:{folder}").train
    assert len(train) == 103
    assert torch.equal(train.images[:100], expected_images(0, 100))
    assert torch.equal(train.images[100:], expected_images(500, 3))


def test_class_names_come_from_batches_meta_when_it_names_ten(tmp_path):
    def names(meta):
        folder = write_folder(tmp_path / f"meta-{len(list(tmp_path.iterdir()))}", meta=meta)
        return load_source(f"cifar10:{folder}").train.class_names

    assert names("\n\n" + "\n".join(NAMES) + "\n\n\n") == NAMES  # blank lines are not names
    assert names("\n".join(NAMES[:9])) == CLASSES  # nine names: CIFAR-10's own ten
    assert names(None) == CLASSES
    assert names("\n".join(NAMES + ["eleventh"])) == CLASSES
    assert CLASSES[0] == "airplane" and CLASSES[9] == "truck" and len(CLASSES) == 10


def test_it_brings_its_own_split_and_keeps_its_size_through_fitting(archive):
    split = load_split(f"cifar10:{archive}", 32, 3)
    assert len(split.train) == 100 and len(split.test) == 10
    assert torch.equal(split.train.images, expected_images(0, 100))
    grey = load_split(f"cifar10:{archive}", 8, 1)  # a grey 8x8 model gets the same images, fitted
    assert grey.train.images.shape == (100, 1, 8, 8) and grey.test.labels.tolist() == split.test.labels.tolist()


def test_count_images_reads_sizes_and_headers_not_pixels(tmp_path, folder):
    assert count_images(f"cifar10:{folder}") == 100  # the train part, which a batch is drawn from
    bad = bytearray((folder / "data_batch_3.bin").read_bytes())
    bad[0] = 200  # a label no loader accepts, which counting never reads
    (folder / "data_batch_3.bin").write_bytes(bytes(bad))
    archive = write_archive(tmp_path / "c.tar.gz", folder)
    assert count_images(f"cifar10:{folder}") == count_images(f"cifar10:{archive}") == 100
    check_source(f"cifar10:{archive}", 100)
    with pytest.raises(DataError, match="batch size 101 is larger than the 100 images"):
        check_source(f"cifar10:{archive}", 101)


# --- what it refuses


def test_a_file_that_is_not_whole_records_or_is_empty_is_refused_by_name(folder):
    batch_4 = folder / "data_batch_4.bin"
    batch_4.write_bytes(batch(0, 20)[:-1])
    refused(f"cifar10:{folder}", str(batch_4), "not a whole number of 3,073-byte records")
    batch_4.write_bytes(b"")
    refused(f"cifar10:{folder}", str(batch_4), "is empty")


def test_a_missing_test_or_train_batch_is_refused(tmp_path, folder):
    (folder / "test_batch.bin").unlink()
    refused(f"cifar10:{folder}", "no test_batch.bin in", "data_batch_1.bin to data_batch_5.bin")
    refused(f"cifar10:{write_archive(tmp_path / 'no-test.tar.gz', folder)}", "no test_batch.bin in")
    only_test = write_folder(tmp_path / "only-test")
    for number in range(1, 6):
        (only_test / f"data_batch_{number}.bin").unlink()
    refused(f"cifar10:{only_test}", "no data_batch_*.bin in")


def test_a_label_over_9_is_refused_naming_the_file_and_record(tmp_path, folder):
    bad = bytearray((folder / "data_batch_2.bin").read_bytes())
    bad[5 * RECORD_BYTES] = 10
    (folder / "data_batch_2.bin").write_bytes(bytes(bad))
    archive = write_archive(tmp_path / "c.tar.gz", folder)
    for source in (f"cifar10:{folder}", f"cifar10:{archive}"):
        with pytest.raises(DataError, match="data_batch_2.bin.*record 5 has label 10; CIFAR-10's labels are 0 to 9"):
            load_source(source)


def test_a_corrupt_or_truncated_gzip_is_one_clear_line(tmp_path, archive):
    packed = archive.read_bytes()
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    refused(f"cifar10:{truncated}", f"cannot read {truncated} as CIFAR-10's .tar.gz")
    flipped = bytearray(packed)
    for at in range(len(packed) // 3, len(packed) // 3 + 64):
        flipped[at] ^= 0xFF
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match=f"cannot read {corrupt}"):
        load_source(f"cifar10:{corrupt}")
    not_a_tar = tmp_path / "not-a-tar.tar.gz"
    not_a_tar.write_bytes(gzip.compress(b"these bytes are no tar archive" * 40))
    refused(f"cifar10:{not_a_tar}", f"cannot read {not_a_tar} as CIFAR-10's .tar.gz")


def test_a_changed_byte_that_still_unpacks_is_caught_by_the_gzip_crc(tmp_path, folder):
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as archive:
        for name in STORED:
            add(archive, name, (folder / name).read_bytes())
    stored = bytearray(gzip.compress(plain.getvalue(), compresslevel=0))  # deflate's stored blocks: bytes as they are
    at = stored.index(record(40)[:64]) + 40  # a pixel of data_batch_3's first image
    stored[at] ^= 0x01
    changed = tmp_path / "changed.tar.gz"
    changed.write_bytes(bytes(stored))
    refused(f"cifar10:{changed}", f"cannot read {changed}", "CRC check failed")


def test_a_stream_running_on_far_past_the_archive_is_refused(tmp_path, archive, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_READ_BYTES", 64 * 1024)
    padded = tmp_path / "padded.tar.gz"
    padded.write_bytes(archive.read_bytes() + gzip.compress(bytes(1024**2)))  # a second gzip member of zeros
    refused(f"cifar10:{padded}", "runs on for more than 65,536 bytes past the end of its tar archive")


def test_a_plain_tar_is_read_too(tmp_path, folder):
    plain = tmp_path / "cifar-10-binary.tar"
    with tarfile.open(plain, "w") as archive:
        for name in STORED:
            add(archive, name, (folder / name).read_bytes())
    assert torch.equal(load_source(f"cifar10:{plain}").train.images, expected_images(0, 100))


# --- an archive is never a way out


def test_member_paths_out_of_the_archive_are_read_by_name_and_nothing_is_written(tmp_path, folder, monkeypatch):
    inside = tmp_path / "a" / "b"
    inside.mkdir(parents=True)
    monkeypatch.chdir(inside)  # where ../../evil would land if a name were ever a path
    names = {"data_batch_1.bin": "../../evil/data_batch_1.bin", "test_batch.bin": f"{tmp_path}/abs/test_batch.bin"}
    archive = write_archive(tmp_path / "evil.tar.gz", folder, names=names)
    before = files_under(tmp_path)
    loaded = load_source(f"cifar10:{archive}")
    assert count_images(f"cifar10:{archive}") == 100
    assert files_under(tmp_path) == before
    assert not (tmp_path / "evil").exists() and not (tmp_path / "abs").exists()
    assert torch.equal(loaded.train.images, expected_images(0, 100))
    assert torch.equal(loaded.test.images, expected_images(TEST_FIRST, TEST_SIZE))


def test_links_and_devices_in_an_archive_are_passed_over(tmp_path, folder):
    secret = tmp_path / "secret"
    secret.write_bytes(batch(0, 1))
    links = [
        entry("cifar-10-batches-bin/data_batch_6.bin", type=tarfile.SYMTYPE, linkname=str(secret)),
        entry(
            "cifar-10-batches-bin/data_batch_7.bin",
            type=tarfile.LNKTYPE,
            linkname="cifar-10-batches-bin/data_batch_1.bin",
        ),
        entry("cifar-10-batches-bin/data_batch_8.bin", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
    ]
    archive = write_archive(tmp_path / "links.tar.gz", folder, extra=links)
    assert len(load_source(f"cifar10:{archive}").train) == 100  # the linked batches add nothing
    (folder / "test_batch.bin").unlink()
    test_link = entry("cifar-10-batches-bin/test_batch.bin", type=tarfile.SYMTYPE, linkname=str(secret))
    without_test = write_archive(tmp_path / "link-test.tar.gz", folder, extra=[test_link])
    refused(f"cifar10:{without_test}", "no test_batch.bin in")


def test_a_link_in_the_folder_is_not_followed(tmp_path, folder):
    outside = tmp_path / "outside.bin"
    (folder / "test_batch.bin").rename(outside)
    os.symlink(outside, folder / "test_batch.bin")
    refused(f"cifar10:{folder}", "no test_batch.bin in")


def test_two_members_of_one_name_are_refused(tmp_path, folder):
    again = (tarfile.TarInfo("elsewhere/data_batch_3.bin"), batch(0, 1))
    archive = write_archive(tmp_path / "twice.tar.gz", folder, extra=[again])
    refused(f"cifar10:{archive}", "holds data_batch_3.bin more than once")


# --- sizes come from headers, before any data is read


def test_a_dataset_over_the_memory_limit_is_refused_from_the_headers(tmp_path, folder, monkeypatch):
    bad = bytearray((folder / "data_batch_1.bin").read_bytes())
    bad[0] = 99  # were any record read, this label would be the complaint
    (folder / "data_batch_1.bin").write_bytes(bytes(bad))
    archive = write_archive(tmp_path / "c.tar.gz", folder)
    per_image = 3 * 32 * 32 * 4 + 8
    monkeypatch.setattr(sources, "MAX_DATASET_BYTES", 60 * per_image)  # each batch fits, all 110 do not
    for source in (f"cifar10:{folder}", f"cifar10:{archive}"):
        refused(source, "would take", "100 images of 3 x 32 x 32 + 10 images of 3 x 32 x 32", "of images are loaded")
    monkeypatch.setattr(sources, "MAX_DATASET_BYTES", 10 * per_image)  # one batch alone is over
    refused(f"cifar10:{archive}", "data_batch_1.bin in", "61,460 bytes; at most 30,730 are read from one file")


def test_a_member_claiming_gigabytes_is_refused_before_tar_skips_it(tmp_path, folder):
    test = (folder / "test_batch.bin").read_bytes()
    first = tarfile.TarInfo("test_batch.bin")
    first.size = len(test)
    header = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
    header.size = 10 * 1024**3  # claimed in the header; a few bytes follow
    padding = bytes(-len(test) % 512)
    huge = tmp_path / "huge.tar.gz"
    huge.write_bytes(gzip.compress(first.tobuf() + test + padding + header.tobuf() + b"<html>" + bytes(2048)))
    refused(f"cifar10:{huge}", "readme.html in", "10,737,418,240 bytes")


def test_a_tar_header_too_large_to_read_is_refused(tmp_path, folder, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_READ_BYTES", 64 * 1024)
    pax = entry("././@PaxHeader", type=tarfile.XHDTYPE)
    pax.size = 256 * 1024  # tarfile reads a pax header whole
    bomb = tmp_path / "pax.tar.gz"
    bomb.write_bytes(gzip.compress(pax.tobuf() + bytes(pax.size) + bytes(1024)))
    refused(f"cifar10:{bomb}", "a tar header or member too large to read")


def test_an_archive_of_too_many_entries_is_refused(archive, monkeypatch):
    monkeypatch.setattr(cifar, "MAX_MEMBERS", 5)
    refused(f"cifar10:{archive}", "holds more than 5 entries")


# --- the preset, the command line, the app, training


def test_the_cifar10_preset_and_its_missing_archive(tmp_path):
    chosen = preset("cifar10")
    assert chosen.vqvae.model.in_channels == 3 and chosen.vqvae.model.image_size == 32
    assert chosen.vqvae.latent_shape == (8, 8)
    assert (chosen.vqvae.quantizer.num_embeddings, chosen.vqvae.quantizer.embedding_dim) == (512, 64)
    assert chosen.train.data == "cifar10:cifar-10-binary.tar.gz" and chosen.train.augment_shift == 0
    command = [sys.executable, "-m", "vqvae", "train", "--preset", "cifar10", "--out", str(tmp_path / "run")]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert result.returncode == 2
    assert result.stderr.strip() == "error: no such file or folder: cifar-10-binary.tar.gz"
    assert not (tmp_path / "run").exists()


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}


def test_the_app_may_read_it_only_inside_its_data_folder(tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    inside = allowed_source("cifar10:cifar-10-binary.tar.gz", data_root, None)
    assert inside == f"cifar10:{(data_root / 'cifar-10-binary.tar.gz').resolve()}"
    for outside in ("cifar10:/etc/passwd", "cifar10:../elsewhere.tar.gz"):
        with pytest.raises(TrainingError) as error:
            allowed_source(outside, data_root, None)
        assert str(error.value) == REFUSED_PATH
    assert "cifar10:" in REFUSED_PATH


def test_a_colour_model_trains_on_it_end_to_end(tmp_path, archive, tiny):
    model = dataclasses.replace(tiny.vqvae.model, in_channels=3, image_size=32, downsample=4)
    config = dataclasses.replace(tiny.vqvae, model=model)
    training = dataclasses.replace(tiny.train, data=f"cifar10:{archive}", steps=4, batch_size=16, save_every=4)
    result = train_vqvae(config, training, tmp_path / "run")
    assert result.step == 4
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded.data.class_names == NAMES and loaded.data.train_images == 100
    images = load_split(training.data, 32, 3).test.images[:2]
    with torch.no_grad():
        indices = loaded.model.encode(images)
        assert indices.shape == (2, 8, 8)
        assert loaded.model.decode_indices(indices).shape == (2, 3, 32, 32)
