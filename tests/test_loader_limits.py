"""Hostile data sources are refused from their headers, before their pixels are read.

Each input is made for real but small on disk: headers that claim huge images or datasets, a
gzip stream that unpacks far past its header, PNGs larger than Pillow will open, a forged .npy
header, links out of a folder. Each is refused with a DataError (the CLI's one-line `error:`),
and normal sources load to exactly the tensors a whole-array conversion gives.
"""

import gzip
import hashlib
import io
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae import data
from vqvae.data import load_source, load_split
from vqvae.errors import DataError
from vqvae.sources import check_source, count_images

ROOT = Path(__file__).resolve().parents[1]
LIMIT = "at most 2.0 GiB of images are loaded"
PIXEL_LIMIT = "images of at most 4096 x 4096 pixels (16,777,216) are read"


def write_idx(path: Path, dims: tuple[int, ...], body: bytes = b"", code: int = 0x08) -> None:
    """An IDX file whose header says `dims`, followed by `body` (gzipped for a .gz name)."""
    header = bytes([0, 0, code, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if path.suffix == ".gz" else open)(path, "wb") as f:
        f.write(header + body)


def write_gzip_bomb(path: Path, dims: tuple[int, ...], unpacked_mib: int) -> None:
    """An IDX header for `dims`, then `unpacked_mib` MiB of zeros: about 1 KB per MiB on disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 0x08, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims))
        for _ in range(unpacked_mib):
            f.write(bytes(1 << 20))


def write_blank_png(path: Path, width: int, height: int) -> None:
    """A valid 1-bit greyscale PNG of zeros, compressed a hundred rows at a time: KBs whatever its size."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    compressor = zlib.compressobj(9)
    blocks = (compressor.compress(row * min(100, height - top)) for top in range(0, height, 100))
    pixels = b"".join(blocks) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))


def npy(dims: tuple[int, ...], dtype: str = "|u1", body: bytes = b"") -> bytes:
    """A .npy member whose header says `dims` of `dtype`, whatever follows it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": dims})
    return header.getvalue() + body


def write_npz(path: Path, **members: bytes) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(f"{name}.npy", content)


def refuses(source: str, *messages: str) -> None:
    """Both the check made before a run starts and the loader refuse `source`, saying each message."""
    for check in (lambda: check_source(source, 1), lambda: load_source(source)):
        with pytest.raises(DataError) as refused:
            check()
        for message in messages:
            assert message in str(refused.value)


PEAK = """
import resource, sys
from vqvae.data import load_source
from vqvae.errors import DataError
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    load_source(sys.argv[1])
except DataError as error:
    print(error)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def load_in_a_process(source: str) -> tuple[str, int]:
    """(the DataError message, MiB the peak memory grew by) of loading `source` in a fresh process."""
    done = subprocess.run([sys.executable, "-c", PEAK, source], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    message, grown = done.stdout.strip().rsplit("\n", 1)
    return message, int(grown)


# IDX


def test_an_idx_header_claiming_huge_images_is_refused_before_any_data_is_read(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", (100_000, 10_000, 10_000))
    assert (tmp_path / "train-images-idx3-ubyte.gz").stat().st_size < 100
    refuses(f"idx:{tmp_path}", "holds 10000 x 10000 images", PIXEL_LIMIT)


def test_an_idx_header_claiming_more_images_than_memory_holds_is_refused(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", (10_000_000, 28, 28))
    refuses(f"idx:{tmp_path}", "would take 29.3 GiB in memory (10,000,000 images of 1 x 28 x 28)", LIMIT)


def test_the_train_and_test_files_of_an_idx_source_count_together(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", (500_000, 28, 28))  # 1.5 GiB as float32, each
    write_idx(tmp_path / "t10k-images-idx3-ubyte", (500_000, 28, 28))
    refuses(f"idx:{tmp_path}", "2.9 GiB in memory (500,000 images of 1 x 28 x 28 + 500,000 images of 1 x 28 x 28)")


def test_a_gzip_bomb_behind_a_small_idx_header_is_read_no_further_than_the_header_says(tmp_path):
    """10 images of 28 x 28 (7,840 bytes) say the header; 200 MiB of zeros follow, 200 KB on disk."""
    write_gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", (10, 28, 28), unpacked_mib=200)
    assert (tmp_path / "train-images-idx3-ubyte.gz").stat().st_size < 1_000_000
    message, grown_mib = load_in_a_process(f"idx:{tmp_path}")
    assert "is truncated or padded: more data follows its header than the header says" in message
    assert grown_mib < 50  # reading it all took 400 MiB


def test_a_cut_off_gzip_stream_is_a_data_error(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", (10, 4, 4), bytes(160))
    whole = (tmp_path / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(whole[:-12])  # no end-of-stream marker
    with pytest.raises(DataError, match="cannot read .*train-images-idx3-ubyte.gz"):
        load_source(f"idx:{tmp_path}")


def test_idx_labels_are_checked_against_the_images_before_they_are_read(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", (3, 2, 2), bytes(12))
    write_idx(tmp_path / "train-labels-idx1-ubyte", (4_000_000_000,))
    with pytest.raises(DataError, match=r"has \(4000000000,\) labels for 3 images"):
        load_source(f"idx:{tmp_path}")


def test_a_label_past_the_class_limit_is_refused(tmp_path):
    """Each class gets a name: a label of two billion would make two billion of them."""
    write_idx(tmp_path / "train-images-idx3-ubyte", (3, 2, 2), bytes(12))
    write_idx(tmp_path / "train-labels-idx1-ubyte", (3,), struct.pack(">iii", 0, 1, 2**31 - 1), code=0x0C)
    with pytest.raises(DataError, match="has a label 2,147,483,647; labels 0 to 99,999"):
        load_source(f"idx:{tmp_path}")


def test_an_idx_source_does_not_follow_a_linked_file(tmp_path):
    outside = tmp_path / "outside" / "secret-images-idx3-ubyte"
    write_idx(outside, (3, 2, 2), bytes(12))
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / "train-images-idx3-ubyte").symlink_to(outside)
    refuses(f"idx:{tmp_path / 'source'}", "no *-images-idx3-ubyte[.gz] file")


# Images in a folder


def test_a_png_larger_than_pillow_opens_is_a_data_error_naming_the_file(tmp_path):
    write_blank_png(tmp_path / "cats" / "huge.png", 30_000, 30_000)
    assert (tmp_path / "cats" / "huge.png").stat().st_size < 200_000
    refuses(f"folder:{tmp_path}", "cats/huge.png is too large to open", PIXEL_LIMIT)


PILLOW_DEFAULT_CAP = 89_478_485  # Pillow's own bomb check: warns past this many pixels, refuses past twice it


@pytest.mark.parametrize(
    "side, pillow_cap, message",
    [
        (12_000, PILLOW_DEFAULT_CAP, "huge.png is too large to open (a decompression bomb?)"),
        (5_000, PILLOW_DEFAULT_CAP, "huge.png is 5000 x 5000 pixels"),
        # the app's upload reader lowers Pillow's check for its whole process to 4096 x 4096 (inputs.py)
        (5_000, 4096 * 4096, "huge.png is too large to open (a decompression bomb?)"),
    ],
)
def test_an_image_over_the_pixel_cap_is_refused_from_its_header(tmp_path, monkeypatch, side, pillow_cap, message):
    """12,000 px: past Pillow's warning (which must not print); 5,000 px: under it, over ours; and
    either, whatever Pillow's check is set to in the process."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_cap)
    write_blank_png(tmp_path / "huge.png", side, side)
    refuses(f"folder:{tmp_path}", message, PIXEL_LIMIT)


def test_a_folder_too_large_for_memory_is_refused_whole_from_the_image_headers_and_streamed(tmp_path, monkeypatch):
    """Each image is within the pixel cap; eleven of them as float32 RGB are not within 2 GiB. Loading them whole
    is refused from the headers; a run reads them from a cache of the decoded images instead (image_cache.py)."""
    for i in range(11):
        write_blank_png(tmp_path / f"{i:02}.png", 4096, 4096)
    source = f"folder:{tmp_path}"
    for load in (lambda: load_source(source), lambda: load_split(source, 8, 1, stream=False)):
        with pytest.raises(DataError, match=r"would take 2\.1 GiB in memory \(11 images of 3 x 4096 x 4096\)"):
            load()
    assert count_images(source) == 11  # a run may start

    class Streamed(Exception):
        pass

    def stand_in(path):  # the cache is asked for, and nothing has been decoded
        raise Streamed(path)

    monkeypatch.setattr(data, "cached_folder", stand_in)
    with pytest.raises(Streamed):
        load_split(source, 8, 1)


def test_a_folder_source_does_not_follow_a_linked_file(tmp_path):
    Image.new("L", (4, 4), 10).save(tmp_path / "secret.png")
    source = tmp_path / "source"
    source.mkdir()
    Image.new("L", (4, 4), 200).save(source / "mine.png")
    (source / "linked.png").symlink_to(tmp_path / "secret.png")
    assert count_images(f"folder:{source}") == 1
    loaded = load_source(f"folder:{source}")
    assert len(loaded) == 1 and torch.equal(loaded.images, torch.full((1, 3, 4, 4), np.float32(200) / np.float32(255)))
    (source / "mine.png").unlink()
    refuses(f"folder:{source}", "no image files")


def test_a_folder_source_does_not_enter_a_linked_folder(tmp_path):
    """(Path.rglob of Python 3.11 enters none either; os.walk is told not to.)"""
    (tmp_path / "elsewhere").mkdir()
    Image.new("L", (4, 4), 10).save(tmp_path / "elsewhere" / "secret.png")
    source = tmp_path / "source"
    (source / "cats").mkdir(parents=True)
    Image.new("L", (4, 4), 200).save(source / "cats" / "mine.png")
    (source / "dogs").symlink_to(tmp_path / "elsewhere")
    (source / "cats" / "more").symlink_to(tmp_path / "elsewhere")
    loaded = load_source(f"folder:{source}")
    assert len(loaded) == 1 and loaded.class_names == ["cats"]


# NumPy archives


def test_an_npz_header_claiming_a_huge_array_is_refused_before_it_is_allocated(tmp_path):
    """713 TiB say the header; reading it was a MemoryError."""
    write_npz(tmp_path / "forged.npz", images=npy((1_000_000_000_000, 28, 28)))
    refuses(f"npz:{tmp_path / 'forged.npz'}", "1,000,000,000,000 images of 1 x 28 x 28", LIMIT)


def test_an_npz_header_claiming_huge_images_is_refused(tmp_path):
    write_npz(tmp_path / "forged.npz", images=npy((10, 100_000, 100_000, 3)))
    refuses(f"npz:{tmp_path / 'forged.npz'}", "holds 100000 x 100000 images", PIXEL_LIMIT)


def test_an_npz_member_shorter_than_its_header_says_is_refused_from_the_zip_directory(tmp_path):
    write_npz(tmp_path / "short.npz", images=npy((100, 28, 28), body=bytes(1000)))
    refuses(f"npz:{tmp_path / 'short.npz'}", "images.npy in", "is truncated: its header says (100, 28, 28)")


def test_an_npy_header_length_is_checked_before_the_header_is_read(tmp_path):
    """A version-2 header may say it is 4 GiB long; numpy would read all of it, then refuse."""
    forged = b"\x93NUMPY\x02\x00" + (200 << 20).to_bytes(4, "little") + b"{" + b" " * 100
    write_npz(tmp_path / "forged.npz", images=forged)
    refuses(f"npz:{tmp_path / 'forged.npz'}", "has a 209,715,200-byte header; at most 10,000 are read")


def test_npz_labels_are_checked_against_the_images_from_their_headers(tmp_path):
    write_npz(tmp_path / "d.npz", images=npy((3, 2, 2), body=bytes(12)), labels=npy((10**12,), "<i8", body=bytes(80)))
    refuses(f"npz:{tmp_path / 'd.npz'}", "(1000000000000,) labels for 3 images")


def test_an_npz_label_past_the_class_limit_is_refused(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((3, 2, 2), np.uint8), labels=np.array([0, 1, 10**15]))
    with pytest.raises(DataError, match="has a label 1,000,000,000,000,000"):
        load_source(f"npz:{tmp_path / 'd.npz'}")


def test_a_source_too_large_once_fitted_to_the_model_is_refused_before_fitting(tmp_path):
    np.savez(tmp_path / "dots.npz", images=np.zeros((50_000, 1, 1), np.uint8))  # 0.6 MB loaded, 157 GB fitted
    with pytest.raises(DataError, match=r"at the model's 3 x 512 x 512 would take 146\.5 GiB"):
        load_split(f"npz:{tmp_path / 'dots.npz'}", 512, 3)


# The command line


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, tuple[str, str]]:
    """One source of each kind of hostile input, by name, and what its refusal says."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    write_idx(tmp_path / "huge" / "train-images-idx3-ubyte.gz", (100_000, 10_000, 10_000))
    write_gzip_bomb(tmp_path / "bomb" / "train-images-idx3-ubyte.gz", (100, 28, 28), unpacked_mib=20)
    write_blank_png(tmp_path / "png" / "huge.png", 30_000, 30_000)
    write_npz(tmp_path / "forged.npz", images=npy((1_000_000_000_000, 28, 28)))
    return {
        "idx header": (f"idx:{tmp_path / 'huge'}", PIXEL_LIMIT),
        "gzip bomb": (f"idx:{tmp_path / 'bomb'}", "more data follows its header than the header says"),
        "png": (f"folder:{tmp_path / 'png'}", "huge.png is too large to open"),
        "npz header": (f"npz:{tmp_path / 'forged.npz'}", LIMIT),
    }


@pytest.mark.parametrize("name", ["idx header", "gzip bomb", "png", "npz header"])
def test_the_command_line_refuses_each_hostile_source_in_one_line(tmp_path, hostile, name):
    source, message = hostile[name]
    command = ["train", "--preset", "digits-tiny", "--out", str(tmp_path / "run"), "--no-eval", "--batch-size", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "vqvae", *command, "--data", source],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert message in done.stderr


# Normal sources load as before


def as_whole_array(pixels: np.ndarray, scale: float) -> torch.Tensor:
    """The conversion done on the whole array at once: float32, / scale, clipped, to (N, C, H, W)."""
    array = np.clip(np.asarray(pixels, dtype=np.float32) / scale, 0.0, 1.0)
    if array.ndim == 3:
        return torch.from_numpy(array[:, None].copy())
    if array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    return torch.from_numpy(array.copy())


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit, NaN included."""
    return a.dtype == b.dtype and a.shape == b.shape and a.numpy().tobytes() == b.numpy().tobytes()


@pytest.mark.parametrize(
    "source, images, labels",
    [
        ("digits", "9f578524b6cec1fc800cc52dfc87ebe56264983d490aa72a4bd928ba2570ec77", "a3c91c262eddcf7b"),
        ("mnist5k", "4bfcb11bc0773f997e1d8df1359c0a4365dc95a57356a3fd834b2e1cf1d98675", "c3556f4a243d7dc7"),
    ],
    ids=["digits", "mnist5k"],
)
def test_the_named_sources_load_to_the_same_bytes_as_before(source, images, labels):
    """The digests of the tensors the whole-array conversion gave (first 16 hex digits for the labels)."""
    loaded = load_source(source)
    assert hashlib.sha256(loaded.images.numpy().tobytes()).hexdigest() == images
    assert hashlib.sha256(loaded.labels.numpy().tobytes()).hexdigest()[:16] == labels


RNG = np.random.default_rng(3)
ARRAYS = {
    "uint8 (N, H, W)": RNG.integers(0, 256, (30, 9, 7), dtype=np.uint8),
    "float64 (N, H, W, 3) in [0, 1]": RNG.random((30, 8, 8, 3)),
    "float32 (N, 1, H, W) in [0, 255]": RNG.uniform(0, 255, (30, 1, 8, 8)).astype(np.float32),
    "int64 in [0, 255]": RNG.integers(0, 256, (30, 8, 8)),
    "Fortran-order float64": np.asfortranarray(RNG.uniform(-0.5, 1.5, (30, 7, 9))),
    "Fortran-order (N, H, W, 3) in [0, 300]": np.asfortranarray(RNG.uniform(0, 300, (30, 6, 6, 3))),
    "bool": RNG.random((30, 8, 8)) > 0.5,
    "float16": RNG.uniform(0, 1, (30, 8, 8)).astype(np.float16),
    "float64 with a NaN": np.where(RNG.random((30, 8, 8)) > 0.99, np.nan, RNG.uniform(-0.5, 1.5, (30, 8, 8))),
}


@pytest.mark.parametrize("name", ARRAYS)
@pytest.mark.parametrize("chunk_bytes", [data.CHUNK_BYTES, 100], ids=["16 MiB pieces", "100-byte pieces"])
def test_an_npz_loads_to_the_whole_array_conversion(tmp_path, monkeypatch, name, chunk_bytes):
    monkeypatch.setattr(data, "CHUNK_BYTES", chunk_bytes)
    pixels = ARRAYS[name]
    np.savez_compressed(tmp_path / "d.npz", images=pixels, labels=np.arange(30) % 3)
    loaded = load_source(f"npz:{tmp_path / 'd.npz'}")
    scale = 255.0 if pixels.dtype == np.uint8 or pixels.max() > 1.0 else 1.0
    assert same(loaded.images, as_whole_array(pixels, scale))
    assert loaded.labels.tolist() == (np.arange(30) % 3).tolist() and loaded.class_names == ["0", "1", "2"]


@pytest.mark.parametrize("chunk_bytes", [data.CHUNK_BYTES, 100], ids=["16 MiB pieces", "100-byte pieces"])
@pytest.mark.parametrize("code, dtype", [(0x08, ">u1"), (0x0B, ">i2"), (0x0E, ">f8")])
def test_an_idx_source_loads_to_the_whole_array_conversion(tmp_path, monkeypatch, chunk_bytes, code, dtype):
    monkeypatch.setattr(data, "CHUNK_BYTES", chunk_bytes)
    pixels = RNG.normal(120, 90, (25, 11, 13)).astype(dtype)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", pixels.shape, pixels.tobytes(), code)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", (25,), (np.arange(25) % 4).astype(">u1").tobytes())
    loaded = load_source(f"idx:{tmp_path}")
    assert same(loaded.images, as_whole_array(pixels, 255.0))
    assert loaded.labels.tolist() == (np.arange(25) % 4).tolist()


def test_a_folder_of_images_loads_to_the_whole_array_conversion(tmp_path):
    """Sizes differ, so every image is resized to the smallest side (9), as before."""
    modes = ["RGB", "L", "RGBA", "P"]
    for i in range(8):
        h, w = [(10, 14), (20, 20), (9, 30), (16, 12)][i % 4]
        image = Image.fromarray(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(modes[i % 4])
        (tmp_path / ("a" if i % 2 else "b")).mkdir(exist_ok=True)
        image.save(tmp_path / ("a" if i % 2 else "b") / f"{i}.png")
    resized = []
    for file in sorted(tmp_path.rglob("*.png")):
        with Image.open(file) as image:
            rgb = np.asarray(image.convert("RGB"))
        resized.append(np.asarray(Image.fromarray(rgb).resize((9, 9), Image.BILINEAR)))
    loaded = load_source(f"folder:{tmp_path}")
    assert same(loaded.images, as_whole_array(np.stack(resized), 255.0))
    assert loaded.class_names == ["a", "b"] and loaded.labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
