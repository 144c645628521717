"""WAV files read by the project itself: the RIFF chunks parsed here, never handed to a program.

PCM of 8, 16, 24 or 32 bits and IEEE float of 32 or 64 bits, plain or WAVE_FORMAT_EXTENSIBLE, any
number of channels (averaged to mono). A file that is not a WAV, or one too long, too large, empty,
silent or clipped, is refused with a message that says which; nothing is decoded before its header
has been checked. Resampling to the model's rate is a polyphase filter (scipy.signal.resample_poly).
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import InputError

MAX_FILE_BYTES = 64 * 2**20
MAX_SECONDS = 60.0  # a recording of a few words; an hour is refused before it is read
MIN_RATE, MAX_RATE = 4000, 192_000
SILENT_RMS = 1e-3  # of full scale: below it a recording holds nothing to hear
CLIPPED_FRACTION = 0.01  # of the samples at full scale: above it the recording is clipped
PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
STREAMED_SIZES = {0xFFFFFFFF, 0x7FFFF000, 0}  # what a writer that could not seek back leaves as a size


def read_wav_bytes(data: bytes, name: str = "the file") -> tuple[np.ndarray, int]:
    """A WAV file's bytes -> (samples (T,) float32 mono in [-1, 1], sample rate)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError(f"{name} is not a WAV file (it has no RIFF/WAVE header)")
    if len(data) > MAX_FILE_BYTES:
        raise InputError(_too_large(name, len(data)))
    fmt, samples = None, None
    at = 12
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        body = at + 8
        if kind == b"fmt ":
            fmt = _format(data[body : body + size], name)
        elif kind == b"data":
            if fmt is None:
                raise InputError(f"{name} has its samples before its format chunk")
            end = len(data) if size in STREAMED_SIZES or body + size > len(data) else body + size
            samples = data[body:end]
            break
        at = body + size + (size & 1)  # chunks are padded to an even size
    if fmt is None or samples is None:
        raise InputError(f"{name} is not a complete WAV file (its format or data chunk is missing)")
    code, channels, rate, bits = fmt
    width = bits // 8
    frames = len(samples) // (width * channels)
    if frames == 0:
        raise InputError(f"{name} holds no samples (0 seconds)")
    if frames / rate > MAX_SECONDS:
        raise InputError(f"{name} lasts {frames / rate:.0f} s; a recording of at most {MAX_SECONDS:.0f} s")
    x = _decode(samples[: frames * width * channels], code, width).reshape(frames, channels).mean(axis=1)
    return x.astype(np.float32), rate


def _too_large(name: str, size: int) -> str:
    return f"{name} is {size / 2**20:.0f} MiB; a WAV file of at most {MAX_FILE_BYTES // 2**20} MiB"


def _format(chunk: bytes, name: str) -> tuple[int, int, int, int]:
    if len(chunk) < 16:
        raise InputError(f"{name} has a broken format chunk")
    code, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", chunk)
    if code == EXTENSIBLE and len(chunk) >= 40:
        code = struct.unpack_from("<H", chunk, 24)[0]  # the sub-format GUID's first two bytes
    known = (code == PCM and bits in (8, 16, 24, 32)) or (code == FLOAT and bits in (32, 64))
    if not known:
        raise InputError(f"{name} is a WAV of format {code} with {bits}-bit samples; use PCM (8-32 bit) or float")
    if not 1 <= channels <= 8:
        raise InputError(f"{name} has {channels} channels; at most 8 are read")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise InputError(f"{name} has a sample rate of {rate} Hz; between {MIN_RATE} and {MAX_RATE} Hz is read")
    return code, channels, rate, bits


def _decode(raw: bytes, code: int, width: int) -> np.ndarray:
    """Little-endian samples -> float64 in [-1, 1]."""
    if code == FLOAT:
        x = np.frombuffer(raw, dtype="<f4" if width == 4 else "<f8").astype(np.float64)
        return np.clip(np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    if width == 1:
        return (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128) / 128
    if width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        value = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        return np.where(value >= 2**23, value - 2**24, value) / 2**23
    dtype = "<i2" if width == 2 else "<i4"
    return np.frombuffer(raw, dtype=dtype).astype(np.float64) / 2 ** (8 * width - 1)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A WAV file -> (samples (T,) float32 mono, sample rate); its size checked before it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(_too_large(path.name, size))
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read {path.name}: {error.strerror or error}") from error
    return read_wav_bytes(data, path.name)


def resample(x: np.ndarray, rate: int, target: int) -> np.ndarray:
    """(T,) at `rate` -> (T * target / rate,) at `target`, by a polyphase low-pass filter."""
    if rate == target:
        return x.astype(np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(target, rate).limit_denominator(1000)
    return resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def check_audible(x: np.ndarray, name: str = "the recording") -> None:
    """Refuse a recording that is silent, or clipped for more than CLIPPED_FRACTION of its samples."""
    rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0
    if rms < SILENT_RMS:
        raise InputError(f"{name} is silent (its level is {20 * math.log10(max(rms, 1e-12)):.0f} dB of full scale)")
    clipped = float(np.mean(np.abs(x) >= 0.999))
    if clipped > CLIPPED_FRACTION:
        raise InputError(f"{name} is clipped: {100 * clipped:.0f}% of its samples sit at full scale; record it quieter")


def wav_bytes(x: np.ndarray, rate: int) -> bytes:
    """(T,) float in [-1, 1] -> a mono 16-bit PCM WAV file's bytes."""
    import io
    import wave

    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
