"""Fuzzing the upload decoder: mutated real PNG and JPEG files give our DataError or a picture, nothing else.

The normal suite runs a few hundred cases from a fixed seed; a long run draws fresh ones:

    FUZZ_CASES=10000 python -m pytest -q -s tests/test_inputs_fuzz.py
"""

from __future__ import annotations

import io
import os
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vqvae.app.inputs import read_image
from vqvae.errors import DataError

CASES = int(os.environ.get("FUZZ_CASES", "300"))


def _digit() -> np.ndarray:
    """A real handwritten 8x8 digit from sklearn, as 32x32 uint8 grey."""
    from sklearn.datasets import load_digits

    digit = load_digits().images[7] * (255 / 16)
    return np.kron(digit, np.ones((4, 4))).round().astype(np.uint8)


def _photo() -> np.ndarray:
    """A 48x64 crop of a real photograph (sklearn's sample images)."""
    from sklearn.datasets import load_sample_images

    return np.ascontiguousarray(load_sample_images().images[0][200:248, 300:364])


def _encoded(array: np.ndarray, fmt: str, mode: str | None = None, **options) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _seeds() -> list[bytes]:
    digit, photo = _digit(), _photo()
    return [
        _encoded(digit, "PNG"),
        _encoded(photo, "PNG"),
        _encoded(photo, "PNG", "P"),
        _encoded(photo, "PNG", "RGBA"),
        _encoded(photo, "PNG", "1"),
        _encoded(digit, "PNG", "LA"),
        _encoded(digit.astype(np.uint16) * 257, "PNG"),  # 16-bit grey
        _encoded(photo, "PNG", optimize=True),
        _encoded(digit, "JPEG", quality=90),
        _encoded(photo, "JPEG", quality=90),
        _encoded(photo, "JPEG", quality=75, progressive=True),
        _encoded(photo, "JPEG", "CMYK", quality=90),
        _encoded(photo, "JPEG", exif=_rotated_exif()),
    ]


def _rotated_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6
    return exif


SEEDS = _seeds()


# --- structure-aware mutations: chunks and segments keep valid checksums, so the decoder gets past them ---


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """(type, data) of each chunk of a well-formed PNG, else None."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, at = [], 8
    while at + 8 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        chunks.append((kind, body))
        at += 12 + length
    return chunks


def png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body)))
    return b"".join(out)


def jpeg_segments(data: bytes) -> list[tuple[int, int]]:
    """(start, end) of each marker segment before the scan data."""
    segments, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        segments.append((at, at + 2 + length))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            break
        at += 2 + length
    return segments


def mutate(data: bytes, op: str, where: float, value: int, blob: bytes) -> bytes:
    """One mutation of `data`; `where` in [0, 1) picks the place, `value` and `blob` the new content."""
    at = int(where * len(data))
    if op == "flip":
        return data[:at] + bytes([data[at] ^ (1 << (value % 8))]) + data[at + 1 :] if data else data
    if op == "set":
        return data[:at] + bytes([value % 256]) + data[at + 1 :]
    if op == "truncate":
        return data[:at]
    if op == "insert":
        return data[:at] + blob + data[at:]
    if op == "delete":
        return data[:at] + data[at + 1 + value % 64 :]
    if op == "duplicate":
        return data[:at] + data[at : at + 1 + value % 256] * 2 + data[at + 1 + value % 256 :]
    if op == "length":  # a 16- or 32-bit field overwritten with an extreme value, checksums left stale
        field = [b"\xff\xff", b"\x00\x00", b"\x7f\xff\xff\xff", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"][value % 5]
        return data[:at] + field + data[at + len(field) :]
    chunks = png_chunks(data)
    if chunks:
        return _mutate_png(chunks, op, where, value, blob)
    segments = jpeg_segments(data) if data.startswith(b"\xff\xd8") else []
    if segments:
        return _mutate_jpeg(data, segments, op, where, value, blob)
    return data


def _mutate_png(chunks: list, op: str, where: float, value: int, blob: bytes) -> bytes:
    i = int(where * len(chunks))
    kind, body = chunks[i]
    if op == "chunk_delete":
        del chunks[i]
    elif op == "chunk_duplicate":
        chunks.insert(i, (kind, body))
    elif op == "chunk_insert":
        kinds = [b"IDAT", b"tRNS", b"PLTE", b"iCCP", b"zTXt", b"eXIf", b"acTL", b"fcTL", b"sBIT", b"gAMA", b"IEND"]
        chunks.insert(i, (kinds[value % len(kinds)], blob))
    elif op == "chunk_body" and body:
        j = value % len(body)
        chunks[i] = (kind, body[:j] + blob[:4] + body[j + 4 :])
    elif op == "dimensions" and len(chunks[0][1]) >= 10:  # IHDR width/height, bit depth, colour type; CRC redone
        ihdr = bytearray(chunks[0][1])
        sizes = [0, 1, 4096, 4097, 5000, 65535, 2**31 - 1, 2**32 - 1]
        struct.pack_into(">I", ihdr, 0 if value % 2 else 4, sizes[value % len(sizes)])
        if len(blob) >= 2:
            ihdr[8], ihdr[9] = blob[0] % 17, blob[1] % 7
        chunks[0] = (chunks[0][0], bytes(ihdr))
    elif op == "recompress":  # a valid zlib stream of other content: the decoder reads it all
        chunks = [(k, b) for k, b in chunks if k != b"IDAT"]
        chunks.insert(len(chunks) - 1, (b"IDAT", zlib.compress(blob * (1 + value % 64))))
    return png_bytes(chunks)


def _mutate_jpeg(data: bytes, segments: list, op: str, where: float, value: int, blob: bytes) -> bytes:
    start, end = segments[int(where * len(segments))]
    if op == "chunk_delete":
        return data[:start] + data[end:]
    if op == "chunk_duplicate":
        return data[:start] + data[start:end] + data[start:]
    if op == "chunk_insert":
        segment = bytes([0xFF, 0xE0 + value % 16]) + struct.pack(">H", len(blob) + 2) + blob
        return data[:start] + segment + data[start:]
    if op == "chunk_body" and end - start > 4:
        j = start + 4 + value % (end - start - 4)
        return data[:j] + blob[:4] + data[j + 4 :]
    if op == "dimensions":  # the frame header's height and width
        for s, e in segments:
            if data[s + 1] in (0xC0, 0xC1, 0xC2) and e - s >= 9:
                sizes = [0, 1, 4096, 4097, 5000, 65535]
                field = struct.pack(">H", sizes[value % len(sizes)])
                at = s + 5 + 2 * (value // len(sizes) % 2)
                return data[:at] + field + data[at + 2 :]
    return data


OPS = (
    "flip",
    "set",
    "truncate",
    "insert",
    "delete",
    "duplicate",
    "length",
    "chunk_delete",
    "chunk_duplicate",
    "chunk_insert",
    "chunk_body",
    "dimensions",
    "recompress",
)
mutation = st.tuples(
    st.sampled_from(OPS),
    st.floats(0, 1, exclude_max=True),
    st.integers(0, 2**16),
    st.binary(min_size=0, max_size=64),
)


slowest = {"seconds": 0.0, "cases": 0, "refused": 0}


@settings(
    max_examples=CASES,
    derandomize="FUZZ_CASES" not in os.environ,
    deadline=None,  # no wall-clock bound in a test: `python -m vqvae bench` times the worst files (bombs)
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed=st.sampled_from(range(len(SEEDS))), mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_images_give_a_picture_or_our_error(tmp_path, seed, mutations):
    data = SEEDS[seed]
    for op, where, value, blob in mutations:
        data = mutate(data, op, where, value, blob)
    path = tmp_path / "upload.png"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        rgb = read_image(path)
    except DataError:
        slowest["refused"] += 1
    else:
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    elapsed = time.perf_counter() - start
    slowest["cases"] += 1
    slowest["seconds"] = max(slowest["seconds"], elapsed)


def test_fuzz_summary():
    """Runs after the fuzz test (file order): what it saw, for the long run's report (the slowest file for
    information: a wall-clock figure is no test on a shared machine)."""
    if slowest["cases"]:
        print(f"\nfuzz: {slowest['cases']} cases, {slowest['refused']} refused, slowest {slowest['seconds']:.3f} s")


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_seed_decodes(tmp_path, seed):
    path = tmp_path / "seed"
    path.write_bytes(SEEDS[seed])
    assert read_image(path).shape[2] == 3
