"""How fast hostile inputs are refused: broken checkpoint folders and image bombs.

The unit tests check that each is refused, with which message and (for bombs) how much memory it
costs; how long a refusal takes depends on the machine and on what else runs on it, so it is
measured here, against the bound of under a second each.
"""

from __future__ import annotations

import json
import pickle
import shutil
import statistics
import struct
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from .. import checkpoint as ckpt
from ..app.inputs import read_image
from ..errors import VQVAEError

Breakage = Callable[[Path], None]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_files(folder: Path) -> dict[str, Path]:
    """Small files (each under 500 KB) whose headers promise far more pixels than the upload cap."""
    files = {"png": folder / "bomb.png", "gif": folder / "bomb.gif"}
    Image.new("1", (8000, 8000)).save(files["png"])  # 64 Mpx: under Pillow's own limit
    Image.new("P", (8000, 8000)).save(files["gif"])
    rows = zlib.compressobj(9)
    body = b"".join(rows.compress(b"\x00" * 20_001) for _ in range(20_000)) + rows.flush()
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0)  # 400 Mpx of 8-bit grey, ~400 KB
    files["png-400mpx"] = folder / "huge.png"
    files["png-400mpx"].write_bytes(
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")
    )
    Image.new("RGB", (16, 8), (255, 0, 0)).save(folder / "small.jpg")
    jpeg = bytearray((folder / "small.jpg").read_bytes())
    at = jpeg.index(b"\xff\xc0")
    jpeg[at + 5 : at + 9] = struct.pack(">HH", 30_000, 30_000)  # the frame header's height and width
    files["jpeg"] = folder / "bomb.jpg"
    files["jpeg"].write_bytes(bytes(jpeg))
    return files


def _write_header(name: str, header: bytes) -> Breakage:
    return lambda folder: (folder / name).write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))


def _claimed_length(length: int) -> Breakage:
    def breakage(folder: Path) -> None:
        data = (folder / ckpt.WEIGHTS).read_bytes()
        (folder / ckpt.WEIGHTS).write_bytes(struct.pack("<Q", length) + data[8:])

    return breakage


def _non_finite_weight(folder: Path) -> None:
    tensors, metadata = ckpt.read_tensors(folder / ckpt.WEIGHTS)
    tensors[ckpt.CODEBOOK].view(-1)[3] = float("nan")
    (folder / ckpt.WEIGHTS).write_bytes(_safetensors_bytes(tensors, metadata))


def _another_codebook(folder: Path) -> None:
    tensors, metadata = ckpt.read_tensors(folder / ckpt.PRIOR)
    (folder / ckpt.PRIOR).write_bytes(_safetensors_bytes(tensors, metadata | {"codebook": "0123456789abcdef"}))


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def _bad_setting(folder: Path) -> None:
    config = json.loads((folder / ckpt.CONFIG).read_text())
    config["vqvae"]["quantizer"]["num_embeddings"] = "512"
    (folder / ckpt.CONFIG).write_text(json.dumps(config))


def _truncated(folder: Path) -> None:
    data = (folder / ckpt.WEIGHTS).read_bytes()
    (folder / ckpt.WEIGHTS).write_bytes(data[: len(data) // 2])


BROKEN_CHECKPOINTS: dict[str, tuple[Breakage, Callable[[Path], object]]] = {
    "a pickle as the weights": (
        lambda folder: (folder / ckpt.WEIGHTS).write_bytes(pickle.dumps({"weights": [0.0] * 1000})),
        ckpt.load_checkpoint,
    ),
    "a torch.save file as the prior": (
        lambda folder: torch.save({"weights": torch.zeros(1000)}, folder / ckpt.PRIOR),
        ckpt.load_prior,
    ),
    "weights cut in half": (_truncated, ckpt.load_checkpoint),
    "a header claiming 2^40 bytes": (_claimed_length(2**40), ckpt.load_checkpoint),
    "a header of 100,000 nested lists": (_write_header(ckpt.WEIGHTS, b"[" * 100_000), ckpt.load_checkpoint),
    "a NaN in the codebook": (_non_finite_weight, ckpt.load_checkpoint),
    "a prior of another codebook": (_another_codebook, ckpt.load_prior),
    "a setting of the wrong type": (_bad_setting, ckpt.load_checkpoint),
}


@dataclass
class Refusal:
    name: str
    median_ms: float  # over the repeats
    message: str  # the refusal's first words, to show it was the refusal that was timed


def _timed_refusal(name: str, load: Callable[[Path], object], path: Path, repeats: int) -> Refusal:
    """load(path) refused `repeats` times, after one untimed refusal (so imports are not counted)."""
    times, message = [], ""
    for _ in range(1 + repeats):
        start = time.perf_counter()
        try:
            load(path)
        except VQVAEError as error:
            message = str(error).replace(str(path), path.name)
        else:
            raise RuntimeError(f"{name} was not refused")
        times.append(time.perf_counter() - start)
    return Refusal(name, 1000 * statistics.median(times[1:]), message[:80])


def time_refusals(shipped: Path, repeats: int = 5) -> dict[str, list[Refusal]]:
    """Each broken copy of the shipped folder and each bomb, refused `repeats` times."""
    results: dict[str, list[Refusal]] = {"checkpoints": [], "images": []}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for i, (name, (breakage, load)) in enumerate(BROKEN_CHECKPOINTS.items()):
            folder = scratch / f"broken-{i}"
            shutil.copytree(shipped, folder, ignore=shutil.ignore_patterns(".*"))
            breakage(folder)
            results["checkpoints"].append(_timed_refusal(name, load, folder, repeats))
        for name, path in bomb_files(scratch).items():
            results["images"].append(_timed_refusal(name, read_image, path, repeats))
    return results
