"""`python -m vqvae convert`: an utterance's codes decoded in another speaker's voice (section 4.3's
speaker conversion): what is said stays in the codes, who says it is the decoder's choice."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..checkpoint import Checkpoint
from ..errors import InputError
from .data import read_utterance
from .model import SpeechVQVAE


@dataclass
class Conversion:
    wave: torch.Tensor  # (CLIP,) float in [-1, 1], in the asked voice
    indices: torch.Tensor  # (1, t) int64, the utterance's codes
    speaker: str  # the voice it was decoded in


def speaker_index(loaded: Checkpoint, speaker: str) -> int:
    """A training speaker by name, or by its number in the checkpoint's list."""
    names = loaded.data.speaker_names
    if speaker in names:
        return names.index(speaker)
    if speaker.isdigit() and int(speaker) < len(names):
        return int(speaker)
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    raise InputError(f"no speaker {speaker!r} in this model; choose one of its {len(names)}: {shown}")


@torch.inference_mode()
def convert(model: SpeechVQVAE, wave: torch.Tensor, speaker: int) -> tuple[torch.Tensor, torch.Tensor]:
    """wave (CLIP,) -> (the same words in voice `speaker` (CLIP,), its codes (1, t))."""
    indices = model.encode(wave[None])  # (1, 1, t)
    return model.decode_indices(indices, torch.tensor([speaker]))[0], indices[0]


def convert_file(loaded: Checkpoint, path: Path, speaker: str) -> Conversion:
    """A WAV file (any rate, trimmed and placed as the training clips were) in a training speaker's voice."""
    index = speaker_index(loaded, speaker)
    wave, indices = convert(loaded.model, torch.from_numpy(read_utterance(Path(path))), index)
    return Conversion(wave, indices, loaded.data.speaker_names[index])
