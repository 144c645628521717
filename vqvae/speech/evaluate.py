"""`python -m vqvae evaluate` of a speech model: what its codes keep and what its decoder adds
(van den Oord et al. 2017, section 4.3).

On the held-out utterances of the training speakers, and on the speakers never trained on:
- the log-spectral distance of the reconstructions (dB), code usage and perplexity;
- content kept: how often the word classifier (trained on real audio) names the word in the
  reconstructions, and in conversions to another training speaker's voice;
- speaker dropped from the codes: logistic regressions on each utterance's code histogram alone
  name its word and its speaker, each against its chance level;
- speaker added by the decoder: how often the speaker classifier names the voice a conversion was
  asked for (and how often still the one it came from).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import checkpoint as ckpt
from ..comparison import priors_to_compare
from ..metrics import bits_per_latent, perplexity
from ..placement import weights_device
from .classifier import SpeechClassifier, judge, load_judge
from .codes import decode_all, encode_all
from .data import SpeechSplit, Utterances
from .features import HOP, log_spectral_distance
from .model import SpeechVQVAE
from .synth import SAMPLE_RATE


def conversion_targets(speakers: torch.Tensor, count: int) -> torch.Tensor:
    """For each utterance (N,) a training speaker other than its own, every one in turn: (N,) int64."""
    step = 1 + torch.arange(len(speakers)) % max(count - 1, 1)
    return (speakers.clamp(min=0) + step) % count


def histograms(indices: torch.Tensor, k: int) -> np.ndarray:
    """(N, 1, t) -> (N, K): each utterance's share of each code."""
    flat = indices.reshape(len(indices), -1)
    counts = torch.zeros(len(indices), k).scatter_add_(1, flat, torch.ones(flat.shape))
    return (counts / counts.sum(dim=1, keepdim=True)).numpy()


def codes_alone(model: SpeechVQVAE, train: Utterances, test: Utterances, test_codes: torch.Tensor) -> dict[str, Any]:
    """What a linear classifier reads off the code histograms alone: the word, and the speaker."""
    from sklearn.linear_model import LogisticRegression

    k = model.num_embeddings
    seen, heard = histograms(encode_all(model, train.waves), k), histograms(test_codes, k)
    result: dict[str, Any] = {}
    for name, train_labels, test_labels, classes in (
        ("word", train.words, test.words, len(train.word_names)),
        ("speaker", train.speakers, test.speakers, len(train.speaker_names)),
    ):
        if classes < 2 or bool((train_labels < 0).any()):
            continue
        fitted = LogisticRegression(max_iter=2000).fit(seen, train_labels.numpy())
        result[f"codes_{name}_accuracy"] = float(fitted.score(heard, test_labels.numpy()))
        result[f"codes_{name}_chance"] = 1 / classes
    return result


def prior_figures(folder: Path, model: SpeechVQVAE, words: SpeechClassifier | None, samples_per_word: int = 20) -> dict:
    """Held-out bits per code under the uniform, unigram and learned priors (the learned one given the word),
    and how often the word classifier names the word the prior was asked for in its decoded samples."""
    fingerprint = ckpt.model_fingerprint(model)
    codes = ckpt.load_codes(folder, model.config, fingerprint=fingerprint)
    compared = priors_to_compare(folder, model.config, codes.train, fingerprint, weights_device(model))
    conditional = compared["learned"].config.num_classes > 0
    result: dict[str, Any] = {}
    for name, prior in compared.items():
        labels = codes.test_labels if name == "learned" and conditional else None
        result[f"{name}_bits_per_latent"] = bits_per_latent(prior, codes.test, labels)
    if words is None or not conditional:
        return result
    asked = torch.arange(words.num_classes).repeat_interleave(samples_per_word)
    drawn = compared["learned"].sample(len(asked), labels=asked, seed=0)  # (n, 1, t)
    voices = torch.arange(len(asked)) % model.config.model.num_speakers
    result["learned_sample_word_accuracy"] = judge(words, decode_all(model, drawn, voices), asked).accuracy
    result["samples_per_word"] = samples_per_word
    return result


def speech_metrics(folder: Any, model: SpeechVQVAE, split: SpeechSplit) -> dict[str, Any]:
    """Every held-out figure of a speech checkpoint; the judges' figures only when it has them."""
    model.eval()
    test, unseen = split.test, split.unseen
    codes = encode_all(model, test.waves)
    rebuilt = decode_all(model, codes, test.speakers)
    counts = torch.bincount(codes.flatten(), minlength=model.num_embeddings)
    t = codes.shape[-1]
    seconds_per_code = HOP * model.config.model.downsample / SAMPLE_RATE
    metrics: dict[str, Any] = {
        "utterances": len(test),
        "unseen_speaker_utterances": len(unseen),
        "lsd_db": float(log_spectral_distance(test.waves, rebuilt).mean()),
        "perplexity": float(perplexity(counts)),
        "codes_used": int((counts > 0).sum()),
        "num_embeddings": model.num_embeddings,
        "codes_per_utterance": t,
        "bits_per_second": math.log2(model.num_embeddings) / seconds_per_code,
    }
    metrics |= codes_alone(model, split.train, test, codes)
    words, speakers = load_judge(folder, "word"), load_judge(folder, "speaker")
    count = len(split.training_speakers)
    targets = conversion_targets(test.speakers, count)
    converted = None if words is None and speakers is None else decode_all(model, codes, targets)
    if words is not None:
        metrics["word_accuracy_real"] = judge(words, test.waves, test.words).accuracy
        metrics["word_accuracy_reconstructed"] = judge(words, rebuilt, test.words).accuracy
        metrics["word_accuracy_converted"] = judge(words, converted, test.words).accuracy
    if speakers is not None:
        metrics["speaker_accuracy_real"] = judge(speakers, test.waves, test.speakers).accuracy
        metrics["speaker_accuracy_reconstructed"] = judge(speakers, rebuilt, test.speakers).accuracy
        metrics["target_speaker_accuracy_converted"] = judge(speakers, converted, targets).accuracy
        metrics["source_speaker_accuracy_converted"] = judge(speakers, converted, test.speakers).accuracy
    if len(unseen) and words is not None and speakers is not None:
        unseen_targets = conversion_targets(unseen.speakers, count)
        from_unseen = decode_all(model, encode_all(model, unseen.waves), unseen_targets)
        metrics["unseen_word_accuracy_converted"] = judge(words, from_unseen, unseen.words).accuracy
        metrics["unseen_target_speaker_accuracy_converted"] = judge(speakers, from_unseen, unseen_targets).accuracy
    if (Path(folder) / ckpt.PRIOR).exists():
        metrics["prior"] = prior_figures(Path(folder), model, words)
    return metrics
