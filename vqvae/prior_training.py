"""Fitting the learned prior to a trained VQ-VAE's code grids (van den Oord et al. 2017, section 3.3) in the
one training loop (train.py), and for a VQ-VAE-2 one prior per level (Razavi et al. 2019, Algorithm 2): the
top level's over its grid, each level below conditioned on the codes above it (ancestral.py).

The code grids are extracted once, for every level, and kept in codes.safetensors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import checkpoint as ckpt
from . import distributed
from .ancestral import condition_channels, condition_map
from .atomic import remove_stale_temp_files
from .codes import extract_level_codes
from .config import DataFacts, PriorConfig, TrainConfig
from .data import load_split
from .errors import CheckpointError, TrainingError
from .families import ModelSettings, family_of
from .files import prior_file, prior_history_file, prior_state_file
from .prior import GatedPixelCNN
from .runtime import Runtime
from .train import EpochSampler, EventCallback, Task, TrainResult, train_loop

log = logging.getLogger(__name__)

CONDITION_LAYERS = 2  # the conditioning stack of a prior below the top: each position hears 2 codes around it

Conditions = Callable[[torch.Tensor], torch.Tensor]  # rows (B,) of the training grids -> their maps (B, M, h, w)


class PriorTask(Task):
    """Batches of code grids (with labels, and the maps of the levels above) and the prior's negative
    log-likelihood per latent."""

    def __init__(
        self,
        prior: GatedPixelCNN,
        codes: torch.Tensor,
        labels: torch.Tensor | None,
        config: TrainConfig,
        fingerprint: str,
        level: str | None = None,
        conditions: Conditions | None = None,
        shard: distributed.Shard | None = None,
    ):
        self.model, self.codes, self.labels, self.fingerprint = prior, codes, labels, fingerprint
        self.level, self.conditions = level, conditions
        self.weights_file, self.state_file = prior_file(level), prior_state_file(level)
        self.history_file = prior_history_file(level)
        self.sampler = EpochSampler(codes.shape[0], config.batch_size, config.seed, shard)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        rows = self.sampler.rows(step)
        labels = None if self.labels is None else self.labels[rows]
        return self.codes[rows], labels, None if self.conditions is None else self.conditions(rows)

    def loss(self, network: torch.nn.Module, batch: tuple) -> tuple[torch.Tensor, dict[str, float]]:
        codes, labels, condition = batch
        logits = network(codes, labels, condition).float()  # (B, K, h, w), through DDP's wrapper when distributed
        nll = torch.nn.functional.cross_entropy(logits, codes)  # nats per latent: -log p(z | label, s) / (h w)
        return nll, {"loss": nll.item(), "bits_per_latent": nll.item() / math.log(2)}

    def save_weights(self, folder: Path, step: int, elapsed_s: float) -> None:
        ckpt.save_prior(folder, self.model, step, elapsed_s, fingerprint=self.fingerprint, level=self.level)


SHIFTED_COPIES = 4  # translated copies of the train split among the prior's grids, if the VQ-VAE trained shifted


def prepare_level_codes(
    folder: Path, fingerprint: str, shifted_copies: int = SHIFTED_COPIES, device: torch.device | str = "cpu"
) -> dict[str | None, ckpt.Codes]:
    """Every level's code grids (top first; the key None for a VQ-VAE's one), extracted from the folder's
    VQ-VAE (fingerprint: of all its codebooks) on `device` and saved the first time they are asked for."""
    config = ckpt.load_config(folder).vqvae
    hierarchy = family_of(config) == "vqvae2"
    if (folder / ckpt.CODES).exists():
        if hierarchy:
            return ckpt.load_level_codes(folder, config, fingerprint=fingerprint)
        return {None: ckpt.load_codes(folder, config, fingerprint=fingerprint)}
    remove_stale_temp_files(folder, (ckpt.CODES,))
    loaded = ckpt.load_checkpoint(folder, device)
    if family_of(config) == "speech":
        from .speech.codes import extract_speech_codes  # the speech family's, loaded only for it
        from .speech.data import load_speech_split

        codes = {None: extract_speech_codes(loaded.model, load_speech_split(loaded.train_config.data))}
    else:
        model_config = loaded.config.model
        split = load_split(loaded.train_config.data, model_config.image_size, model_config.in_channels)
        shift = loaded.train_config.augment_shift
        copies = shifted_copies if shift else 0
        codes = extract_level_codes(loaded.model, split, copies, shift, loaded.train_config.seed)
    if hierarchy:
        ckpt.save_level_codes(folder, codes, fingerprint=fingerprint)
    else:
        ckpt.save_codes(folder, codes[None], fingerprint=fingerprint)
    return codes


def prepare_codes(folder: Path, fingerprint: str, shifted_copies: int = SHIFTED_COPIES) -> ckpt.Codes:
    """A VQ-VAE's code grids, extracted (fingerprint: its codebook's) and saved the first time they are asked for."""
    return prepare_level_codes(folder, fingerprint, shifted_copies)[None]


def grid_count(data: DataFacts, training: TrainConfig | None) -> int:
    """How many training grids prepare_codes extracts: the train split and its shifted copies (0: unknown)."""
    copies = SHIFTED_COPIES if training is not None and training.augment_shift else 0
    return data.train_images * (1 + copies)


UNLABELLED = "a class-conditional prior needs labelled data; train it unconditional instead"


def check_level(config: ModelSettings, level: str | None) -> None:
    """A TrainingError unless `level` names a level of a hierarchy, or is None for a one-level VQ-VAE."""
    if family_of(config) == "vqvae2":
        if level not in config.level_names:
            names = ", ".join(config.level_names)
            raise TrainingError(f"this VQ-VAE-2 has one prior per level: choose the level to train ({names})")
    elif level is not None:
        raise TrainingError(f"this VQ-VAE has one grid of codes and one prior; it has no level {level!r}")


def _new_prior_config(config: ModelSettings, level: str | None, classes: int, settings: dict[str, Any]) -> PriorConfig:
    """A prior over the level's grid (the VQ-VAE's one for level None); below the top, heard through a
    conditioning stack over the codes of the levels above."""
    if level is None:
        h, w = config.latent_shape
        return PriorConfig(config.quantizer.num_embeddings, h, w, classes, **settings)
    h, w = config.latent_shapes[level]
    m = condition_channels(config, level)
    below_top = {"condition_channels": m, "condition_layers": CONDITION_LAYERS} if m else {}
    return PriorConfig(config.quantizer.num_embeddings, h, w, classes, **(below_top | settings))


def train_prior(
    folder: str | Path,
    train_config: TrainConfig,
    *,
    level: str | None = None,
    conditional: bool = True,
    settings: dict[str, Any] | None = None,
    resume: bool = False,
    on_event: EventCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    runtime: Runtime | None = None,
) -> TrainResult:
    """Fit the gated PixelCNN prior to the code grids of a trained VQ-VAE folder, or of one level of a
    VQ-VAE-2 (level: its name, e.g. "top"; a level below the top hears the codes above it).

    settings: PriorConfig fields beyond K and the grid (e.g. hidden_channels); on resume
    the folder's own prior settings are used. As for the VQ-VAE, everything is checked before
    config.json gains the prior's settings, and a resume before the first save starts at step 0.
    In a data-parallel run every rank calls it; rank 0 extracts the codes and writes the folder.
    """
    folder = Path(folder)
    runtime = runtime or Runtime()
    main = runtime.shard.main
    config, vqvae_training, data = ckpt.load_config(folder)[1:]
    check_level(config, level)
    grids = grid_count(data, vqvae_training)
    if train_config.batch_size > grids > 0:  # said before the grids are extracted and saved
        raise TrainingError(f"batch size {train_config.batch_size} is larger than the {grids} code grids to train on")
    weights, state = prior_file(level), prior_state_file(level)
    saved = (folder / state).exists()
    if resume:
        if not saved and (folder / weights).exists():
            raise CheckpointError(f"{folder} has no {state} to resume from")
        prior_config, _ = ckpt.read_prior_settings(folder, level)
    else:
        if (folder / weights).exists():
            which = "" if level is None else f" of its {level} level"
            raise TrainingError(f"{folder} already has a learned prior{which}; resume it, or delete {weights} first")
        classes = len(data.class_names) if conditional else 0
        if conditional and classes == 0:
            raise TrainingError(UNLABELLED)
        prior_config = _new_prior_config(config, level, classes, settings or {})
    codebooks = ckpt.folder_codebooks(folder)  # the weights read once, for both fingerprints
    distributed.barrier()  # every rank has checked the folder before rank 0 writes to it
    if main:
        codes = prepare_level_codes(folder, ckpt.fingerprint_through(codebooks), device=runtime.device)
    distributed.barrier()
    if not main:  # saved by rank 0 by now
        codes = prepare_level_codes(folder, ckpt.fingerprint_through(codebooks))
    if prior_config.num_classes and int(codes[level].train_labels.min()) < 0:
        raise TrainingError(UNLABELLED)
    torch.manual_seed(train_config.seed)
    prior = GatedPixelCNN(prior_config)
    labels = codes[level].train_labels if prior_config.num_classes else None
    fingerprint = ckpt.fingerprint_through(codebooks, level)
    conditions = _conditions(folder, codes, level)
    task = PriorTask(prior, codes[level].train, labels, train_config, fingerprint, level, conditions, runtime.shard)
    if not resume and main:
        ckpt.update_config(folder, **ckpt.prior_sections(level, prior_config, train_config))
    elif resume and not saved:
        log.info("the prior in %s was stopped before its first save: training it from step 0", folder)
    return train_loop(
        task,
        train_config,
        folder,
        resume=resume and saved,
        on_event=on_event,
        should_stop=should_stop,
        runtime=runtime,
    )


def _conditions(folder: Path, codes: dict[str | None, ckpt.Codes], level: str | None) -> Conditions | None:
    """The maps of the levels above `level` for rows of its training grids; None at the top or with one level."""
    names = list(codes)
    if level is None or names.index(level) == 0:
        return None
    model = ckpt.load_checkpoint(folder).model
    above = [codes[name].train for name in names[: names.index(level)]]
    return lambda rows: condition_map(model, [grids[rows] for grids in above], level)
