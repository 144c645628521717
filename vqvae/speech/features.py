"""Sound <-> log-magnitude spectrogram: the speech model's input and output, and Griffin-Lim's way back.

A clip of CLIP samples at 16 kHz is framed by a 512-point Hann window every 128 samples (8 ms), which
gives FRAMES = 128 frames of 257 frequency bins. The model reads and writes log |STFT|; the sound is
made again by fast Griffin-Lim (Perraudin et al. 2013): phases found by alternating between the
magnitudes asked for and the nearest consistent spectrogram, with momentum. Every phase starts at
zero, so the same magnitudes always give the same sound.
"""

from __future__ import annotations

import math

import torch

from ..config import SPEECH_FRAMES

N_FFT = 512
HOP = 128
BINS = N_FFT // 2 + 1  # 257
FRAMES = SPEECH_FRAMES  # 128
CLIP = HOP * (FRAMES - 1)  # 16,256 samples: 1.016 s at 16 kHz
FLOOR = 1e-4  # of full scale: the magnitude of silence, so log |X| stays finite
GRIFFIN_LIM_STEPS = 32
MOMENTUM = 0.99


def _window(device: torch.device) -> torch.Tensor:
    return torch.hann_window(N_FFT, device=device)


def stft(x: torch.Tensor) -> torch.Tensor:
    """(B, CLIP) -> complex (B, BINS, FRAMES)."""
    return torch.stft(x, N_FFT, HOP, window=_window(x.device), center=True, return_complex=True)


def log_magnitude(x: torch.Tensor) -> torch.Tensor:
    """(B, CLIP) waves -> (B, BINS, FRAMES) log |STFT|, floored at FLOOR."""
    return stft(x.float()).abs().clamp_min(FLOOR).log()


def griffin_lim(log_mag: torch.Tensor, steps: int = GRIFFIN_LIM_STEPS) -> torch.Tensor:
    """(B, BINS, FRAMES) log |STFT| -> (B, CLIP) waves whose spectrogram has about these magnitudes."""
    magnitude = log_mag.float().exp()
    window = _window(magnitude.device)
    angles = torch.ones_like(magnitude, dtype=torch.complex64)  # phase 0
    previous = torch.zeros_like(angles)
    for _ in range(steps):
        x = torch.istft(magnitude * angles, N_FFT, HOP, window=window, center=True, length=CLIP)
        rebuilt = torch.stft(x, N_FFT, HOP, window=window, center=True, return_complex=True)
        angles = rebuilt - (MOMENTUM / (1 + MOMENTUM)) * previous
        angles = angles / angles.abs().clamp_min(1e-16)
        previous = rebuilt
    x = torch.istft(magnitude * angles, N_FFT, HOP, window=window, center=True, length=CLIP)
    return x.clamp(-1, 1)


def log_spectral_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Waves (B, CLIP) -> (B,) the log-spectral distance in dB: per frame, the RMS over bins of the
    difference of 10 log10 |X|^2, then the mean over frames."""
    decibels = 20 / math.log(10)  # log |X| -> 10 log10 |X|^2
    difference = (log_magnitude(a) - log_magnitude(b)) * decibels  # (B, BINS, FRAMES)
    return difference.pow(2).mean(dim=1).sqrt().mean(dim=1)
