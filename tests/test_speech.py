"""The speech family (van den Oord et al. 2017, section 4.3): WAV files read safely, the spoken digits
rendered the same every time, a 1-D VQ-VAE whose decoder is told the speaker, and the commands that
train it and convert a recording to another voice."""

import math
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.__main__ import main
from vqvae.config import QuantizerConfig, SpeechConfig, SpeechModelConfig, TrainConfig, speech_config_from_dict
from vqvae.errors import DataError, InputError
from vqvae.sources import check_source
from vqvae.speech.classifier import JudgeTask, SpeechClassifier, judge
from vqvae.speech.data import SpeechSplit, load_speech_split
from vqvae.speech.evaluate import conversion_targets, speech_metrics
from vqvae.speech.features import CLIP, FRAMES, griffin_lim, log_magnitude, log_spectral_distance
from vqvae.speech.model import SpeechVQVAE
from vqvae.speech.synth import SAMPLE_RATE, place, speakers, utterance_plan
from vqvae.speech.train import SpeechTask, shifted_waves, spectrogram_variance
from vqvae.speech.wav import check_audible, read_wav, read_wav_bytes, wav_bytes
from vqvae.train import train_loop

HAS_ESPEAK = shutil.which("espeak-ng") is not None
needs_espeak = pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
TRAIN_TINY = ["train", "--preset", "speech-digits", "--hidden", "32", "--K", "32", "--D", "8", "--batch-size", "16"]


def tone(seconds: float = 0.5, rate: int = SAMPLE_RATE, hz: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * math.pi * hz * t) * np.minimum(1, 10 * t)).astype(np.float32)


def riff(fmt: bytes, data: bytes, data_size: int | None = None) -> bytes:
    size = len(data) if data_size is None else data_size
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", size) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pcm_format(code: int, bits: int, rate: int = 16000, channels: int = 1) -> bytes:
    width = bits // 8
    return struct.pack("<HHIIHH", code, channels, rate, rate * width * channels, width * channels, bits)


# --- WAV files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "bits", "encode"),
    [
        (1, 16, lambda x: np.round(x * 32767).astype("<i2").tobytes()),
        (1, 8, lambda x: (np.round(x * 127) + 128).astype(np.uint8).tobytes()),
        (1, 24, lambda x: b"".join(int(v).to_bytes(3, "little", signed=True) for v in np.round(x * 8388607))),
        (1, 32, lambda x: np.round(x * 2147483647).astype("<i4").tobytes()),
        (3, 32, lambda x: x.astype("<f4").tobytes()),
        (3, 64, lambda x: x.astype("<f8").tobytes()),
    ],
)
def test_every_sample_format_reads_back_the_sound_it_holds(code, bits, encode):
    x = tone(0.1)
    y, rate = read_wav_bytes(riff(pcm_format(code, bits), encode(x)))
    assert rate == SAMPLE_RATE and y.dtype == np.float32 and len(y) == len(x)
    assert np.abs(y - x).max() < (0.01 if bits == 8 else 1e-4)


def test_stereo_is_averaged_and_our_own_files_read_back():
    x = tone(0.1)
    both = np.stack([x, -x / 2], axis=1).reshape(-1)
    y, _ = read_wav_bytes(riff(pcm_format(1, 16, channels=2), np.round(both * 32767).astype("<i2").tobytes()))
    assert np.abs(y - x / 4).max() < 1e-4
    z, rate = read_wav_bytes(wav_bytes(x, 8000))
    assert rate == 8000 and np.abs(z - x).max() < 1e-4


def test_a_streamed_size_is_read_to_the_end_of_the_file():
    """espeak-ng --stdout (and any writer that cannot seek back) leaves 0x7ffff000 as the data size."""
    data = np.round(tone(0.1) * 32767).astype("<i2").tobytes()
    y, _ = read_wav_bytes(riff(pcm_format(1, 16), data, data_size=0x7FFFF000))
    assert len(y) == len(data) // 2


@pytest.mark.parametrize(
    ("data", "said"),
    [
        (b"ID3\x03 an mp3 named .wav", "is not a WAV file"),
        (riff(pcm_format(1, 16), b""), "holds no samples (0 seconds)"),
        (riff(pcm_format(1, 16, rate=1000), b"\0\0" * 100), "sample rate of 1000 Hz"),
        (riff(pcm_format(2, 4), b"\0" * 100), "format 2 with 4-bit samples"),
        (riff(pcm_format(1, 8, rate=8000), b"\x80" * (8000 * 61)), "lasts 61 s"),
        (b"RIFF\x10\0\0\0WAVEfmt \x04\0\0\0abcd", "broken format chunk"),
        (b"RIFF\x04\0\0\0WAVE", "not a complete WAV file"),
    ],
)
def test_a_file_that_is_not_a_readable_recording_is_refused_with_why(data, said):
    with pytest.raises(InputError, match=re.escape(said)):
        read_wav_bytes(data, "clip.wav")


def test_an_hour_long_file_is_refused_by_its_size_before_it_is_read(tmp_path):
    path = tmp_path / "hour.wav"
    with path.open("wb") as f:
        f.write(riff(pcm_format(1, 16), b""))
        f.truncate(SAMPLE_RATE * 2 * 3600)  # sparse: an hour of 16-bit samples
    with pytest.raises(InputError, match="hour.wav is 110 MiB; a WAV file of at most 64 MiB"):
        read_wav(path)


def test_silence_and_clipping_are_refused():
    with pytest.raises(InputError, match="is silent"):
        check_audible(np.zeros(16000, dtype=np.float32))
    with pytest.raises(InputError, match="is clipped: 50% of its samples"):
        check_audible(np.sign(tone(1.0)) * (np.arange(16000) % 2))
    check_audible(tone(1.0))


# --- the spoken digits ------------------------------------------------------------------------


def test_the_plan_is_48_speakers_8_kept_out_each_saying_every_word_six_times():
    voices = speakers()
    assert len(voices) == 48 and sum(v["unseen"] for v in voices) == 8
    assert len({v["name"] for v in voices}) == 48
    plan = utterance_plan()
    assert len(plan) == 48 * 10 * 6 and plan == utterance_plan()  # seeded: the same every time


def test_a_word_is_trimmed_set_in_at_its_lead_and_brought_to_one_loudness():
    x = np.concatenate([np.zeros(4000), tone(0.5), np.zeros(3000)]).astype(np.float32)
    clip = place(x)
    assert clip.shape == (CLIP,) and np.abs(clip[:700]).max() == 0
    assert abs(math.sqrt(np.mean(clip[800:8800] ** 2)) - 0.1) < 0.01


@pytest.fixture(scope="module")
def digits() -> SpeechSplit:
    if not HAS_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    return load_speech_split("speech-digits")


def test_the_splits_hold_out_utterances_and_keep_eight_speakers_out(digits):
    assert (len(digits.train), len(digits.test), len(digits.unseen)) == (2000, 400, 480)
    assert len(digits.training_speakers) == 40
    assert set(digits.test.speakers.tolist()) == set(digits.train.speakers.tolist()) == set(range(40))
    assert set(digits.unseen.speakers.tolist()) == set(range(40, 48))
    assert torch.bincount(digits.test.words).tolist() == [40] * 10
    assert digits.train.waves.shape == (2000, CLIP) and float(digits.train.waves.abs().max()) <= 1.0


def test_griffin_lim_gives_back_a_sound_close_to_the_original(digits):
    x = digits.test.waves[:4]
    assert log_magnitude(x).shape == (4, 257, FRAMES)
    assert float(log_spectral_distance(x, griffin_lim(log_magnitude(x))).mean()) < 3.0
    assert float(log_spectral_distance(x, torch.zeros_like(x)).mean()) > 10.0  # silence: about 18 dB


def test_the_source_is_checked_before_torch_and_refused_as_images():
    if HAS_ESPEAK:
        check_source("speech-digits", 32)
    with pytest.raises(DataError, match="holds speech, not images"):
        from vqvae.data import load_source

        load_source("speech-digits")


# --- the model --------------------------------------------------------------------------------


def tiny_config(speakers: int = 4) -> SpeechConfig:
    return SpeechConfig(
        SpeechModelConfig(downsample=8, hidden_channels=32, residual_channels=16, num_speakers=speakers, speaker_dim=8),
        QuantizerConfig(num_embeddings=32, embedding_dim=8),
    )


def test_codes_are_a_row_per_clip_and_the_voice_changes_only_the_decoder():
    model = SpeechVQVAE(tiny_config()).eval()
    waves = torch.from_numpy(np.stack([place(tone(0.4, hz=h)) for h in (200, 300)]))
    indices = model.encode(waves)
    assert indices.shape == (2, 1, FRAMES // 8) and model.latent_shape == (1, FRAMES // 8)
    a = model.decode_spectrogram(indices, torch.tensor([0, 0]))
    b = model.decode_spectrogram(indices, torch.tensor([1, 1]))
    assert a.shape == (2, 257, FRAMES) and not torch.allclose(a, b)
    assert model.decode_indices(indices, torch.tensor([0, 1])).shape == (2, CLIP)


def test_the_speech_settings_are_rebuilt_strictly_from_json():
    config = tiny_config()
    assert speech_config_from_dict(ckpt.to_dict(config)) == config
    broken = ckpt.to_dict(config)
    broken["model"]["downsample"] = 3
    with pytest.raises(ValueError, match="downsample must be"):
        speech_config_from_dict(broken)


def test_a_shift_moves_each_wave_with_zeros_filling_in():
    waves = torch.arange(1, 7, dtype=torch.float32).repeat(2, 1)
    moved = shifted_waves(waves, 2, torch.tensor([0, 4]))
    assert moved.tolist() == [[0, 0, 1, 2, 3, 4], [3, 4, 5, 6, 0, 0]]


def test_the_speech_task_learns_the_spectrogram_far_better_than_its_mean(digits, tmp_path):
    train = digits.train.subset(torch.arange(0, 2000, 10))
    variance = spectrogram_variance(train.waves)  # the error of predicting the mean log spectrogram
    torch.manual_seed(0)
    config = TrainConfig(data="speech-digits", steps=60, batch_size=16, learning_rate=3e-3, log_every=10)
    result = train_loop(SpeechTask(SpeechVQVAE(tiny_config(40)), train, config, variance), config, tmp_path)
    errors = [row["reconstruction_mse"] / variance for row in result.history]
    assert errors[-1] < 0.6 and errors[-1] < 0.6 * errors[0]


def test_the_evaluation_reports_every_figure_it_promises(digits, tmp_path):
    small = SpeechSplit(
        digits.train.subset(torch.arange(0, 2000, 10)),  # 200: enough for 40 speakers' logistic regression
        digits.test.subset(torch.arange(0, 400, 40)),
        digits.unseen.subset(torch.arange(0, 480, 40)),
    )
    model = SpeechVQVAE(tiny_config(40)).eval()
    (tmp_path / ckpt.CONFIG).write_text('{"format_version": 1}')
    metrics = speech_metrics(tmp_path, model, small)
    assert metrics["utterances"] == 10 and metrics["lsd_db"] > 0
    assert 0 <= metrics["codes_word_accuracy"] <= 1 and metrics["codes_speaker_chance"] == 1 / 40


def test_a_conversion_target_is_never_the_speaker_itself():
    sources = torch.arange(40).repeat(3)
    targets = conversion_targets(sources, 40)
    assert not bool((targets == sources).any()) and set(targets.tolist()) == set(range(40))


def test_the_judges_train_and_name_what_they_learned(digits, tmp_path):
    train = digits.train.subset(torch.arange(0, 2000, 4))
    torch.manual_seed(0)
    words = SpeechClassifier(10, channels=32)
    from vqvae.config import classifier_training

    config = classifier_training(60, 0)
    train_loop(JudgeTask(words, train.waves, train.words, config, "word_classifier"), config, tmp_path)
    accuracy = judge(words, digits.test.waves, digits.test.words).accuracy
    assert accuracy > 0.5  # chance: 0.1


# --- the commands ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny speech model trained by the command line for 20 steps."""
    if not HAS_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("speech") / "run"
    assert main([*TRAIN_TINY, "--steps", "20", "--out", str(out), "--no-eval"]) == 0
    return out


def test_train_then_convert_a_recording_to_another_voice(tiny_run, tmp_path, capsys):
    out = tiny_run
    loaded = ckpt.load_checkpoint(out)
    assert loaded.config.model.num_speakers == 40 and len(loaded.data.speaker_names) == 40
    recording = tmp_path / "seven.wav"
    recording.write_bytes(wav_bytes(tone(0.6, rate=22050), 22050))
    speaker = loaded.data.speaker_names[5]
    converted = tmp_path / "converted.wav"
    assert main(["convert", str(out), "--wav", str(recording), "--speaker", speaker, "--out", str(converted)]) == 0
    assert f"in the voice of {speaker}" in capsys.readouterr().out
    y, rate = read_wav(converted)
    assert rate == SAMPLE_RATE and len(y) == CLIP


@pytest.mark.parametrize(
    ("given", "said"),
    [("not a wav", "is not a WAV file"), (b"silent", "is silent"), ("speaker", "no speaker 'nobody' in this model")],
)
def test_convert_refuses_bad_input_and_writes_nothing(tiny_run, tmp_path, capsys, given, said):
    out = tiny_run
    recording = tmp_path / "in.wav"
    if given == "not a wav":
        recording.write_text("hello")
    elif given == b"silent":
        recording.write_bytes(wav_bytes(np.zeros(8000, dtype=np.float32), 16000))
    else:
        recording.write_bytes(wav_bytes(tone(0.5), 16000))
    speaker = "nobody" if given == "speaker" else "0"
    converted = tmp_path / "converted.wav"
    assert main(["convert", str(out), "--wav", str(recording), "--speaker", speaker, "--out", str(converted)]) == 2
    assert said in capsys.readouterr().err and not converted.exists()


def test_a_wav_folder_reads_word_and_speaker_from_its_names(tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i, (word, speaker) in enumerate([(w, s) for w in ("yes", "no") for s in ("ann", "bob")] * 5):
        (folder / f"{word}_{speaker}_{i}.wav").write_bytes(wav_bytes(tone(0.3, hz=200 + 50 * i), 16000))
    split = load_speech_split(f"wav:{folder}")
    assert split.train.word_names == ["no", "yes"] and split.train.speaker_names == ["ann", "bob"]
    assert len(split.train) + len(split.test) == 20 and len(split.test) == 2 and len(split.unseen) == 0
    (folder / "broken_ann_99.wav").write_text("not a recording")
    with pytest.raises(DataError, match="broken_ann_99.wav is not a WAV file"):
        load_speech_split(f"wav:{folder}")


def test_a_word_conditioned_prior_trains_on_the_codes_and_speaks_sampled_words(tiny_run, tmp_path, capsys):
    out = tmp_path / "speech"
    shutil.copytree(tiny_run, out)
    prior = ["--steps", "6", "--batch-size", "16", "--hidden", "16", "--layers", "2"]
    assert main(["train-prior", str(out), *prior]) == 0
    codes = ckpt.load_codes(out, ckpt.load_checkpoint(out).config)
    assert codes.train.shape == (2000, 1, 16) and codes.test.shape == (400, 1, 16)
    assert codes.train_labels.tolist()[:6] == [0] * 5 + [1]  # the words, as labels
    samples = tmp_path / "said.wav"
    assert main(["sample", str(out), "--n", "3", "--label", "7", "--out", str(samples)]) == 0
    assert "3 utterances (seven (" in capsys.readouterr().out
    y, rate = read_wav(samples)
    assert rate == SAMPLE_RATE and len(y) == 3 * (CLIP + SAMPLE_RATE // 5)
