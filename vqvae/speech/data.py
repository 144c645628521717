"""Speech data sources -> utterances: waves of one clip's length at 16 kHz, with word and speaker.

    speech-digits   espeak-ng's 48 voices saying "zero" ... "nine" (synth.py)
    wav:FOLDER      the user's own recordings; word and speaker read from names like
                    {word}_{speaker}_{n}.wav (the Free Spoken Digit Dataset's), else unknown (-1)

Splits: `train`; `test`, held-out utterances of the training speakers; `unseen`, the utterances of
speakers kept out of training (speech-digits' 8; in a wav: folder, none).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, InputError
from .synth import SAMPLE_RATE, place, speech_digits
from .wav import check_audible, read_wav, resample

MAX_WAV_FILES = 100_000
HELD_OUT_EVERY = 10  # a wav: folder's utterance i is held out when i % 10 == 9


@dataclass
class Utterances:
    waves: torch.Tensor  # (N, CLIP) float32 in [-1, 1]
    words: torch.Tensor  # (N,) int64 into word_names; -1 unknown
    speakers: torch.Tensor  # (N,) int64 into speaker_names; -1 unknown
    word_names: list[str]
    speaker_names: list[str]

    def __len__(self) -> int:
        return len(self.waves)

    def subset(self, rows: torch.Tensor) -> Utterances:
        return Utterances(self.waves[rows], self.words[rows], self.speakers[rows], self.word_names, self.speaker_names)


@dataclass
class SpeechSplit:
    train: Utterances
    test: Utterances  # held-out utterances of the training speakers
    unseen: Utterances  # utterances of speakers never trained on (their ids index speaker_names too)

    @property
    def training_speakers(self) -> list[str]:
        """The speakers the decoder learns an embedding for, in the order of their ids."""
        return self.train.speaker_names


def _digits_split() -> SpeechSplit:
    found = speech_digits()
    waves = torch.from_numpy(found["waves"].astype(np.float32) / 32767)
    word, speaker, rendition = (torch.from_numpy(found[key]) for key in ("word", "speaker", "rendition"))
    unseen_flags = torch.from_numpy(found["unseen"])
    names = found["speaker_names"]
    seen = [i for i, flag in enumerate(unseen_flags.tolist()) if not flag]
    kept = [i for i, flag in enumerate(unseen_flags.tolist()) if flag]
    order = torch.full((len(names),), -1, dtype=torch.int64)
    order[seen] = torch.arange(len(seen))  # training speakers first, numbered 0 .. S-1
    order[kept] = torch.arange(len(seen), len(names))
    every = Utterances(waves, word, order[speaker], found["word_names"], [names[i] for i in seen + kept])
    last = rendition == int(rendition.max())
    trained = ~unseen_flags[speaker]
    train, test = every.subset(torch.nonzero(trained & ~last)[:, 0]), every.subset(torch.nonzero(trained & last)[:, 0])
    for part in (train, test):  # the training speakers alone: the embedding table's rows
        part.speaker_names = every.speaker_names[: len(seen)]
    return SpeechSplit(train, test, every.subset(torch.nonzero(~trained)[:, 0]))


def _named_parts(path: Path) -> tuple[str | None, str | None]:
    parts = path.stem.split("_")
    return (parts[0], parts[1]) if len(parts) >= 3 else (None, None)


def read_utterance(path: Path) -> np.ndarray:
    """One WAV file -> (CLIP,) float32 at 16 kHz, trimmed and placed as speech-digits' are."""
    x, rate = read_wav(path)
    check_audible(x, path.name)
    return place(resample(x, rate, SAMPLE_RATE))


def _wav_split(folder: Path) -> SpeechSplit:
    if not folder.is_dir():
        raise DataError(f"wav:{folder}: no such folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())[: MAX_WAV_FILES + 1]
    if not files:
        raise DataError(f"wav:{folder} holds no .wav files")
    if len(files) > MAX_WAV_FILES:
        raise DataError(f"wav:{folder} holds more than {MAX_WAV_FILES:,} .wav files")
    waves = []
    for path in files:
        try:
            waves.append(read_utterance(path))
        except InputError as error:
            raise DataError(f"wav:{folder}: {error}") from error
    named = [_named_parts(path) for path in files]
    word_names = sorted({w for w, _ in named if w is not None})
    speaker_names = sorted({s for _, s in named if s is not None}) or ["speaker"]
    words = torch.tensor([word_names.index(w) if w is not None else -1 for w, _ in named])
    speakers = torch.tensor([speaker_names.index(s) if s is not None else 0 for _, s in named])
    every = Utterances(torch.from_numpy(np.stack(waves)), words, speakers, word_names, speaker_names)
    held = torch.arange(len(files)) % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    train, test = every.subset(torch.nonzero(~held)[:, 0]), every.subset(torch.nonzero(held)[:, 0])
    return SpeechSplit(train, test, every.subset(torch.arange(0)))


def load_speech_split(source: str) -> SpeechSplit:
    """speech-digits or wav:FOLDER -> its train, test and unseen-speaker utterances (CLIP samples each)."""
    if source == "speech-digits":
        return _digits_split()
    if source.startswith("wav:") and source[4:]:
        return _wav_split(Path(source[4:]).expanduser())
    raise DataError(f"unknown speech source {source!r}: speech-digits or wav:FOLDER")
