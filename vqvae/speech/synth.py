"""`speech-digits`: the words "zero" ... "nine" spoken by 48 voices that Debian's espeak-ng synthesises.

Each speaker is one of espeak-ng's voice variants in one English accent, with a pitch and rate of its
own; each says every word RENDITIONS times, pitch and rate varied a little each time. The audio is
resampled to 16 kHz, trimmed of silence, set at the start of a clip of CLIP samples and brought to one
loudness. Every number comes from a seeded generator, so the set is the same on every machine with
the same espeak-ng; it is rendered once (about 20 s) and cached.

Splits: the last rendition of each (speaker, word) of the 40 training speakers is held out (by
utterance); 8 speakers are kept out of training entirely (UNSEEN), for conversion from a voice the
model never heard.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes
from ..emoji import cache_folder
from ..errors import DataError, InputError
from .features import CLIP
from .wav import read_wav_bytes, resample

SAMPLE_RATE = 16_000

LEAD = 800  # samples of silence before each word (50 ms)
LOUDNESS = 0.1  # the RMS every utterance is brought to
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)  # fmt: skip
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "adam", "Alicia", "Andy",
    "annie", "anika", "aunty", "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "grandma",
    "grandpa", "gustave", "iven", "john", "linda", "max", "michael", "norbert", "paul", "quincy", "rob",
    "robert", "shelby", "steph", "travis", "victor", "Denis", "Hugo", "Lee", "Marco", "Mike",
)  # fmt: skip
RENDITIONS = 6
UNSEEN_EVERY = 6  # speaker k is kept out of training when k % 6 == 5: 8 of 48
FORMAT = 1  # bump when the rendering changes, so old caches are not read
SEED = 2017


def speakers() -> list[dict]:
    """Each speaker's voice, accent, base pitch (espeak's 0-99) and rate (words per minute)."""
    rng = np.random.default_rng(SEED)
    found = []
    for k, variant in enumerate(VARIANTS):
        accent = ACCENTS[k % len(ACCENTS)]
        found.append(
            {
                "name": f"{variant}-{accent}",
                "voice": f"{accent}+{variant}",
                "pitch": int(rng.integers(25, 76)),
                "rate": int(rng.integers(135, 196)),
                "unseen": k % UNSEEN_EVERY == UNSEEN_EVERY - 1,
            }
        )
    return found


def utterance_plan() -> list[dict]:
    """Every utterance to render: speaker index, word index, rendition and its espeak-ng settings."""
    rng = np.random.default_rng(SEED + 1)
    plan = []
    for s, speaker in enumerate(speakers()):
        for w, word in enumerate(WORDS):
            for r in range(RENDITIONS):
                pitch = int(np.clip(speaker["pitch"] + rng.integers(-6, 7), 0, 99))
                rate = int(speaker["rate"] + rng.integers(-15, 16))
                plan.append({"speaker": s, "word": w, "rendition": r, "voice": speaker["voice"],
                             "pitch": pitch, "rate": rate, "text": word})  # fmt: skip
    return plan


def espeak() -> str:
    found = shutil.which("espeak-ng")
    if found is None:
        raise DataError("speech-digits is spoken by espeak-ng, which is not installed: apt-get install espeak-ng")
    return found


def fingerprint() -> str:
    version = subprocess.run([espeak(), "--version"], capture_output=True, text=True, check=False).stdout.strip()
    recipe = json.dumps({"format": FORMAT, "espeak": version, "plan": utterance_plan()}, sort_keys=True)
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def place(x: np.ndarray) -> np.ndarray:
    """16-kHz speech -> (CLIP,) float32: silence trimmed (10-ms frames under 1% of the loudest frame's
    RMS), the word set LEAD samples in, cut at CLIP, brought to LOUDNESS."""
    frame = SAMPLE_RATE // 100
    frames = len(x) // frame
    rms = np.sqrt(np.mean(np.square(x[: frames * frame].reshape(frames, frame)), axis=1))
    voiced = np.flatnonzero(rms > 0.01 * rms.max()) if frames else np.empty(0, dtype=np.int64)
    if len(voiced) == 0:
        raise InputError("the utterance is silent")
    word = x[voiced[0] * frame : (voiced[-1] + 1) * frame][: CLIP - LEAD]
    clip = np.zeros(CLIP, dtype=np.float32)
    clip[LEAD : LEAD + len(word)] = word
    return np.clip(clip * (LOUDNESS / np.sqrt(np.mean(np.square(word)))), -1.0, 1.0)


def render(item: dict) -> np.ndarray:
    """One utterance -> (CLIP,) float32 at SAMPLE_RATE."""
    command = [espeak(), "-v", item["voice"], "-p", str(item["pitch"]), "-s", str(item["rate"]), "--stdout"]
    done = subprocess.run([*command, item["text"]], capture_output=True, check=False, timeout=60)
    if done.returncode != 0:
        raise DataError(f"espeak-ng could not speak {item['text']!r} as {item['voice']}: {done.stderr.decode()[:200]}")
    x, rate = read_wav_bytes(done.stdout, "espeak-ng's output")
    return place(resample(x, rate, SAMPLE_RATE))


def speech_digits(cache: Path | None = None) -> dict[str, np.ndarray | list[str]]:
    """The whole set: waves (N, CLIP) int16, word / speaker / rendition (N,), unseen (speakers,) bool,
    word and speaker names. Rendered once into the cache, then read from it."""
    folder = (cache or cache_folder()) / "speech"
    path = folder / f"speech-digits-{fingerprint()}.npz"
    if path.exists():
        try:
            with np.load(path) as stored:
                return _named(dict(stored))
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache is rendered again
    plan = utterance_plan()
    with ThreadPoolExecutor(max_workers=4) as pool:  # espeak-ng runs in its own processes
        waves = np.stack(list(pool.map(render, plan)))
    arrays = {
        "waves": np.round(waves * 32767).astype(np.int16),
        "word": np.array([item["word"] for item in plan], dtype=np.int64),
        "speaker": np.array([item["speaker"] for item in plan], dtype=np.int64),
        "rendition": np.array([item["rendition"] for item in plan], dtype=np.int64),
        "unseen": np.array([speaker["unseen"] for speaker in speakers()]),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    return _named(arrays)


def _named(arrays: dict) -> dict:
    return arrays | {"word_names": list(WORDS), "speaker_names": [speaker["name"] for speaker in speakers()]}
