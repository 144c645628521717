"""The checkpoint folder: save, load and validate (see DESIGN.md, "A checkpoint folder").

The names of its files are in files.py (each with what it holds), and re-exported here.
Weights are safetensors and settings JSON, so loading a folder can never run code.
Every file is written atomically (atomic.py: temp file in the same folder, fsync,
os.replace, fsync the folder), so a crash leaves either the old file or the new one,
never half of one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from .atomic import atomic_write_bytes, atomic_write_json
from .config import (
    DataFacts,
    PriorConfig,
    TrainConfig,
    data_facts_from_dict,
    prior_config_from_dict,
    to_dict,
    train_config_from_dict,
)
from .errors import CheckpointError
from .families import FAMILIES, Model, ModelSettings, build_model, family_of
from .files import ANALYSIS as ANALYSIS  # re-exported, as every file name is
from .files import CLASSIFIER as CLASSIFIER
from .files import CLASSIFIER_HISTORY as CLASSIFIER_HISTORY
from .files import CLASSIFIER_STATE as CLASSIFIER_STATE
from .files import CODES, CONFIG, HISTORY, METRICS, TRAIN_STATE, WEIGHTS, prior_file, prior_stem
from .files import MAX_FILE_BYTES as MAX_FILE_BYTES
from .files import PRIOR as PRIOR
from .files import PRIOR_HISTORY as PRIOR_HISTORY
from .files import PRIOR_STATE as PRIOR_STATE
from .hierarchy import VQVAE2
from .prior import GatedPixelCNN

FORMAT_VERSION = 1
MAX_JSON_BYTES = 64 * 1024**2  # config, history and metrics; the shipped history.json is 0.5 MB
MAX_HEADER_BYTES = 8 * 1024**2  # a safetensors header lists names, dtypes, shapes: a few KB here
PICKLE_MAGIC = (b"\x80", b"PK\x03\x04")  # a pickle (protocol >= 2), or torch.save's zip of pickles
HEADER_START = b"{"  # a safetensors header is a JSON object: byte 8 is always "{"


def _checked_file(path: Path, limit: int) -> int:
    """The size of a regular file of the folder (not a link out of it) within `limit` bytes."""
    if not path.is_file():
        raise CheckpointError(f"{path.name} is missing from {path.parent}")
    if path.resolve().parent != path.parent.resolve():
        raise CheckpointError(f"{path} is a link out of its checkpoint folder; only files inside it are read")
    size = path.stat().st_size
    if size > limit:
        raise CheckpointError(f"{path} is {size / 1024**2:,.0f} MB, more than the {limit / 1024**2:,.0f} MB accepted")
    return size


def read_json(path: Path) -> Any:
    path = Path(path)
    _checked_file(path, MAX_JSON_BYTES)
    try:
        return json.loads(path.read_text(), parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", name, 0)


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"refusing to save {path.name}: {name} holds NaN or Inf values")
    contiguous = {name: t.detach().contiguous().cpu() for name, t in tensors.items()}
    atomic_write_bytes(path, save_safetensors_bytes(contiguous, metadata=metadata))


def read_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, checked before any tensor is read: an 8-byte
    little-endian length, then that many bytes of JSON, within MAX_HEADER_BYTES and the file."""
    size = _checked_file(path, MAX_FILE_BYTES)
    with open(path, "rb") as f:
        prefix = f.read(9)
        # a header length of 128 + 256 n also starts with 0x80: only "{" after it tells the two apart
        if prefix.startswith(PICKLE_MAGIC) and prefix[8:] != HEADER_START:
            raise CheckpointError(f"{path} is a pickle (torch.save) file, which could run code; only safetensors load")
        prefix = prefix[:8]
        if len(prefix) < 8:
            raise CheckpointError(f"{path} is not a valid safetensors file: {size} bytes, too short for a header")
        length = int.from_bytes(prefix, "little")
        if length > MAX_HEADER_BYTES:
            raise CheckpointError(
                f"{path} is not a valid safetensors file: its header claims {length:,} bytes, "
                f"more than the {MAX_HEADER_BYTES:,} accepted"
            )
        if length > size - 8:
            raise CheckpointError(f"{path} is truncated: its header claims {length:,} bytes of a {size:,}-byte file")
        f.seek(8)
        try:
            header = json.loads(f.read(length), parse_constant=_no_constant)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            message = f"{path} is not a valid safetensors file: its header is not JSON ({error})"
            raise CheckpointError(message) from error
    if not isinstance(header, dict) or not isinstance(header.get("__metadata__") or {}, dict):
        raise CheckpointError(f"{path} is not a valid safetensors file: its header is not a JSON object of tensors")
    return header


def weights_step(path: Path) -> int | None:
    """The training step a weights file records in its header; None when it is missing or records none."""
    if not Path(path).exists():
        return None
    try:
        return int((read_header(path).get("__metadata__") or {})["step"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None


def read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; any defect is a CheckpointError."""
    path = Path(path)
    header = read_header(path)
    try:
        tensors = load_safetensors_bytes(path.read_bytes())
    except Exception as error:  # safetensors raises its own and builtin types for bad files
        raise CheckpointError(f"{path} is not a valid safetensors file: {error}") from error
    return tensors, dict(header.get("__metadata__") or {})


def check_state_dict(module: torch.nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Same names, same shapes, finite values: else a CheckpointError naming the difference."""
    expected = module.state_dict()
    missing, unexpected = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not match its config.json: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(
                f"{source}: {name} has shape {tuple(tensor.shape)}, config.json asks for {tuple(expected[name].shape)}"
            )
        if tensor.dtype != expected[name].dtype:
            raise CheckpointError(f"{source}: {name} is {tensor.dtype}, the model holds {expected[name].dtype}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: {name} holds NaN or Inf values")


def check_codebook(tensors: dict[str, torch.Tensor], config: ModelSettings, source: Path) -> None:
    """The codebook e in R^{K x D} is the weights' most telling shape: name K and D when it is not config.json's."""
    k, d = config.quantizer.num_embeddings, config.quantizer.embedding_dim
    for level, name in codebook_names(config).items():
        codebook = tensors.get(name)
        if codebook is not None and tuple(codebook.shape) != (k, d):
            whose = "a codebook" if level is None else f"a {level} codebook"
            raise CheckpointError(
                f"{source} holds {whose} of shape {tuple(codebook.shape)}, "
                f"but config.json asks for K = {k} codes of D = {d}"
            )


@dataclass
class Checkpoint:
    """A loaded checkpoint folder: the model in eval mode and what was recorded beside it."""

    path: Path
    config: ModelSettings  # a VQVAEConfig, or a VQVAE2Config for a hierarchy
    train_config: TrainConfig | None
    model: Model
    history: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    data: DataFacts = field(default_factory=DataFacts)  # the data's variance, class names, size
    step: int = 0  # training steps behind these weights
    train_time_s: float = 0.0


class FolderConfig(NamedTuple):
    """config.json, checked: the family, its model's settings, how it trained and what it trained on."""

    family: str
    vqvae: ModelSettings  # the settings of the family's model (VQVAE2Config for "vqvae2")
    train: TrainConfig | None
    data: DataFacts


def save_config(folder: Path, config: ModelSettings, train_config: TrainConfig, data: DataFacts) -> None:
    family = family_of(config)
    atomic_write_json(
        Path(folder) / CONFIG,
        {
            "format_version": FORMAT_VERSION,
            "family": family,
            family: to_dict(config),
            "train": to_dict(train_config),
            "extra": to_dict(data),
        },
    )


def read_config(folder: Path) -> dict[str, Any]:
    """config.json as a dict, after checking its format version."""
    path = Path(folder) / CONFIG
    raw = read_json(path)
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        version = raw.get("format_version") if isinstance(raw, dict) else None
        raise CheckpointError(f"{path}: format_version {version!r} is not {FORMAT_VERSION}")
    return raw


def update_config(folder: Path, **sections: Any) -> None:
    """Set top-level sections of config.json (e.g. the prior's settings), keeping the rest."""
    atomic_write_json(Path(folder) / CONFIG, read_config(folder) | sections)


def load_config(folder: Path) -> FolderConfig:
    """The one reader of config.json: its family (a folder written before families were named is a
    "vqvae"), then that family's settings, each checked."""
    path = Path(folder) / CONFIG
    raw = read_config(folder)
    family = raw.get("family", "vqvae")
    if family not in FAMILIES:
        known = tuple(FAMILIES)
        raise CheckpointError(f"{path} holds a model of family {family!r}, which this version cannot load: {known}")
    try:
        config = FAMILIES[family].from_dict(raw.get(family))
        train = train_config_from_dict(raw["train"]) if raw.get("train") else None
        data = data_facts_from_dict(raw.get("extra") or {})
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{path} has an invalid setting: {error}") from error
    return FolderConfig(family, config, train, data)


def save_weights(folder: Path, model: Model, step: int, elapsed_s: float = 0.0) -> None:
    metadata = {"step": str(step), "elapsed_s": repr(elapsed_s)}
    write_tensors(Path(folder) / WEIGHTS, model.state_dict(), metadata=metadata)


def load_checkpoint(folder: str | Path, device: torch.device | str = "cpu") -> Checkpoint:
    """Rebuild the VQ-VAE (or VQ-VAE-2) from config.json and load its validated weights (eval mode), on
    `device` (placement.py: it takes questions from the CPU all the same)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}")
    config, train, data = load_config(folder)[1:]
    model = build_model(config)
    tensors, metadata = read_tensors(folder / WEIGHTS)
    check_codebook(tensors, config, folder / WEIGHTS)
    check_state_dict(model, tensors, folder / WEIGHTS)
    model.load_state_dict(tensors)
    model.to(device).eval()
    history = read_json(folder / HISTORY) if (folder / HISTORY).exists() else []
    metrics = read_json(folder / METRICS) if (folder / METRICS).exists() else {}
    if not isinstance(history, list) or not all(isinstance(entry, dict) for entry in history):
        raise CheckpointError(f"{folder / HISTORY} is not a list of training records")
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{folder / METRICS} is not a JSON object of measurements")
    try:
        step, train_time_s = int(metadata.get("step", 0)), float(metadata.get("elapsed_s", 0.0))
    except ValueError as error:
        raise CheckpointError(f"{folder / WEIGHTS} has bad metadata: {error}") from error
    if "step" in metadata:  # a save interrupted between history.json and the weights leaves it ahead
        history = [row for row in history if not (isinstance(row.get("step"), int) and row["step"] > step)]
    return Checkpoint(folder, config, train, model, history, metrics, data, step, train_time_s)


# --- train state: one file holding all a resume needs ---------------------------------


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state -> flat tensors + JSON-able rest (param_groups, scalar state)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for slot, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"optim.{index}.{slot}"] = value
            else:
                scalars[f"{index}.{slot}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _optimizer_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, index, slot = name.split(".", 2)
        state.setdefault(int(index), {})[slot] = value
    for name, value in rest["scalars"].items():
        index, slot = name.split(".", 1)
        state.setdefault(int(index), {})[slot] = value
    return {"state": state, "param_groups": rest["param_groups"]}


@dataclass
class TrainState:
    step: int
    elapsed_s: float
    rng_state: torch.Tensor  # torch's global generator: codebook init and restarts draw from it
    # the history row being gathered (steps since the last log, their summed scalars, the task's
    # window tensors such as code counts), so a resume between two logs writes the same row
    window_steps: int = 0
    window_sums: dict[str, float] = field(default_factory=dict)
    window_tensors: dict[str, torch.Tensor] = field(default_factory=dict)


def save_train_state(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: TrainState, name: str = TRAIN_STATE
) -> None:
    optim_tensors, optim_rest = _optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()} | optim_tensors
    tensors["rng.torch"] = state.rng_state
    tensors |= {f"window.{k}": v for k, v in state.window_tensors.items()}
    metadata = {
        "format_version": str(FORMAT_VERSION),
        "step": str(state.step),
        "elapsed_s": repr(state.elapsed_s),
        "optimizer": json.dumps(optim_rest),
        "window": json.dumps({"steps": state.window_steps, "sums": state.window_sums}),
    }
    write_tensors(Path(folder) / name, tensors, metadata)


def load_train_state(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, name: str = TRAIN_STATE
) -> TrainState:
    """Restore model, optimizer and RNG from the train state file; returns where training stood."""
    path = Path(folder) / name
    tensors, metadata = read_tensors(path)
    model_tensors = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    check_state_dict(model, model_tensors, path)
    try:
        optim_state = _optimizer_state(
            {k: v for k, v in tensors.items() if k.startswith("optim.")}, json.loads(metadata["optimizer"])
        )
        model.load_state_dict(model_tensors)
        optimizer.load_state_dict(optim_state)
        window = json.loads(metadata.get("window", '{"steps": 0, "sums": {}}'))  # absent before it was saved
        sums = {str(k): float(v) for k, v in window["sums"].items()}
        window_tensors = {k[len("window.") :]: v for k, v in tensors.items() if k.startswith("window.")}
        return TrainState(
            int(metadata["step"]), float(metadata["elapsed_s"]), tensors["rng.torch"],
            int(window["steps"]), sums, window_tensors,
        )  # fmt: skip
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as error:
        raise CheckpointError(f"{path} cannot be resumed from: {error}") from error


# --- code grids and the prior -----------------------------------------------------------


@dataclass
class Codes:
    """The VQ-VAE's code grids of its data, so the prior trains without the encoder."""

    train: torch.Tensor  # (N, h, w) int64
    train_labels: torch.Tensor  # (N,) int64, -1 where unlabelled
    test: torch.Tensor  # (M, h, w) int64
    test_labels: torch.Tensor  # (M,) int64


# --- files made from one codebook -------------------------------------------------------
# The code grids, the prior, the analysis and metrics.json are made from the VQ-VAE as it was
# then. Each records its codebook's fingerprint; a file whose codebook is not the folder's (the
# VQ-VAE trained on since, or a file copied from another folder) is refused, or, for measured
# numbers, measured again. Files without a fingerprint (older ones) are taken as they are.

CODEBOOK = "quantizer.embedding"  # the codebook (K, D) in the VQ-VAE's weights


def codebook_names(config: ModelSettings) -> dict[str | None, str]:
    """Where each level's codebook (K, D) is in the weights, top first; the key None for a VQ-VAE's one."""
    if family_of(config) == "vqvae2":
        return {level: f"quantizers.{i}.embedding" for i, level in enumerate(config.level_names)}
    return {None: CODEBOOK}


def codebook_fingerprint(*codebooks: torch.Tensor) -> str:
    """16 hex digits of the SHA-256 of the codebooks (K, D) as float32, one after another: which codes a
    file speaks of. A file about a level of a hierarchy is made from that level's codebook and those above it."""
    digest = hashlib.sha256()
    for codebook in codebooks:
        digest.update(codebook.detach().float().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def fingerprint_through(codebooks: dict[str | None, torch.Tensor], level: str | None = None) -> str:
    """The fingerprint of the codebooks (top first) down to `level` (None: all of them)."""
    names = list(codebooks)
    through = names if level is None else names[: names.index(level) + 1]
    return codebook_fingerprint(*(codebooks[name] for name in through))


def model_codebooks(model: Model) -> dict[str | None, torch.Tensor]:
    """A model's codebooks (K, D), top first; the key None for a VQ-VAE's one."""
    if isinstance(model, VQVAE2):
        return {level: q.embedding for level, q in zip(model.level_names, model.quantizers)}
    return {None: model.quantizer.embedding}


def model_fingerprint(model: Model, level: str | None = None) -> str:
    """The fingerprint of a model's codebooks, down to `level` (None: all of them)."""
    return fingerprint_through(model_codebooks(model), level)


def folder_codebooks(folder: Path) -> dict[str | None, torch.Tensor]:
    """The codebooks (K, D) in a folder's weights, top first; the key None for a VQ-VAE's one."""
    path = Path(folder) / WEIGHTS
    tensors, _ = read_tensors(path)
    codebooks = {}
    for name, key in codebook_names(load_config(folder).vqvae).items():
        if key not in tensors:
            raise CheckpointError(f"{path} has no {key}")
        codebooks[name] = tensors[key]
    return codebooks


def folder_fingerprint(folder: Path, level: str | None = None) -> str:
    """The fingerprint of the codebooks in a folder's weights, down to `level` (None: all of them)."""
    return fingerprint_through(folder_codebooks(folder), level)


def file_fingerprint(path: Path) -> str:
    """16 hex digits of the SHA-256 of a file's bytes (a few ms for the shipped weights)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def measured_files(folder: Path) -> dict[str, str]:
    """The fingerprints of the files evaluate's numbers depend on, as metrics.json records them."""
    config = load_config(folder).vqvae
    priors = [prior_file(level) for level in getattr(config, "level_names", (None,))]
    paths = {name: Path(folder) / name for name in (WEIGHTS, CODES, *priors)}
    return {name: file_fingerprint(path) for name, path in paths.items() if path.exists()}


def made_from(fingerprint: str | None) -> dict[str, str]:
    """The metadata that records the fingerprint of the codebook a file was made from."""
    return {} if fingerprint is None else {"codebook": fingerprint}


def check_made_from(path: Path, metadata: dict[str, str], fingerprint: str, remedy: str) -> None:
    """A CheckpointError when the file at path was made from another codebook than the one with `fingerprint`."""
    recorded = metadata.get("codebook")
    if recorded is not None and recorded != fingerprint:
        raise CheckpointError(
            f"{path} was made from another codebook ({recorded}) than this VQ-VAE's ({fingerprint}): "
            f"the VQ-VAE was trained on since, or the file comes from another checkpoint. {remedy}"
        )


def _grid_tensors(codes: Codes, prefix: str = "") -> dict[str, torch.Tensor]:
    small = torch.int16 if int(codes.train.max()) < 2**15 else torch.int32  # K <= 65536
    return {f"{prefix}train": codes.train.to(small), f"{prefix}test": codes.test.to(small)}


def save_codes(folder: Path, codes: Codes, *, fingerprint: str | None = None) -> None:
    tensors = _grid_tensors(codes) | {"train_labels": codes.train_labels, "test_labels": codes.test_labels}
    write_tensors(Path(folder) / CODES, tensors, metadata=made_from(fingerprint))


def save_level_codes(folder: Path, codes: dict[str, Codes], *, fingerprint: str | None = None) -> None:
    """A hierarchy's code grids, each level's as "{level}.train" and "{level}.test"; the labels once."""
    first = next(iter(codes.values()))
    tensors = {"train_labels": first.train_labels, "test_labels": first.test_labels}
    for level, grids in codes.items():
        tensors |= _grid_tensors(grids, f"{level}.")
    write_tensors(Path(folder) / CODES, tensors, metadata=made_from(fingerprint))


def _read_codes(folder: Path, fingerprint: str | None) -> tuple[Path, dict[str, torch.Tensor]]:
    path = Path(folder) / CODES
    tensors, metadata = read_tensors(path)
    remedy = f"Delete {CODES} and train the prior again to extract them anew."
    check_made_from(path, metadata, fingerprint or folder_fingerprint(folder), remedy)
    return path, tensors


def _codes_of(
    path: Path, tensors: dict[str, torch.Tensor], prefix: str, k: int, shape: tuple[int, int], what: str
) -> Codes:
    try:
        codes = Codes(
            *(tensors[name].long() for name in (f"{prefix}train", "train_labels", f"{prefix}test", "test_labels"))
        )
    except KeyError as error:
        raise CheckpointError(f"{path} lacks {error}") from error
    for grids in (codes.train, codes.test):
        if tuple(grids.shape[1:]) != shape or int(grids.min()) < 0 or int(grids.max()) >= k:
            raise CheckpointError(f"{path} holds {what} that are not {shape} codes in [0, {k})")
    return codes


def load_codes(folder: Path, config: ModelSettings, *, fingerprint: str | None = None) -> Codes:
    """The folder's code grids, checked against its VQ-VAE (fingerprint: its codebook's, read from the
    folder's weights when not given)."""
    path, tensors = _read_codes(folder, fingerprint)
    return _codes_of(path, tensors, "", config.quantizer.num_embeddings, config.latent_shape, "grids")


def load_level_codes(folder: Path, config: ModelSettings, *, fingerprint: str | None = None) -> dict[str, Codes]:
    """A hierarchy's code grids, top first, checked against its VQ-VAE-2 (fingerprint: of all its codebooks,
    read from the folder's weights when not given)."""
    path, tensors = _read_codes(folder, fingerprint)
    k = config.quantizer.num_embeddings
    return {
        level: _codes_of(path, tensors, f"{level}.", k, shape, f"{level} grids")
        for level, shape in config.latent_shapes.items()
    }


def save_prior(
    folder: Path,
    prior: GatedPixelCNN,
    step: int,
    elapsed_s: float = 0.0,
    *,
    fingerprint: str | None = None,
    level: str | None = None,
) -> None:
    """A prior's weights; a hierarchy's priors (one per level) record their level by name."""
    metadata = {"step": str(step), "elapsed_s": repr(elapsed_s)} | made_from(fingerprint)
    metadata |= {} if level is None else {"level": level}
    write_tensors(Path(folder) / prior_file(level), prior.state_dict(), metadata=metadata)


def _level_shape(config: ModelSettings, level: str | None, source: Path) -> tuple[int, int]:
    """The grid a prior of `level` models: the VQ-VAE's one (level None), or that level's of a hierarchy."""
    shapes = config.latent_shapes if family_of(config) == "vqvae2" else {None: config.latent_shape}
    if level not in shapes:
        levels = ", ".join(str(name) for name in shapes) if None not in shapes else "one grid, no named levels"
        raise CheckpointError(f"{source}: a prior of level {level!r} does not apply to this VQ-VAE ({levels})")
    return shapes[level]


def check_prior_matches(prior: PriorConfig, config: ModelSettings, source: Path, level: str | None = None) -> None:
    """A prior is only meaningful over its own VQ-VAE's codes (of its own level): same K, same grid."""
    k, shape = config.quantizer.num_embeddings, _level_shape(config, level, source)
    if prior.num_embeddings != k or prior.latent_shape != shape:
        grids = "grids" if level is None else f"{level} grids"
        raise CheckpointError(
            f"{source}: the prior models {prior.latent_shape} grids of {prior.num_embeddings} codes, "
            f"but this VQ-VAE makes {shape} {grids} of {k} codes"
        )


def _no_prior(folder: Path, level: str | None) -> CheckpointError:
    if level is None:
        return CheckpointError(f"{folder} has no learned prior; train one with `python -m vqvae train-prior {folder}`")
    return CheckpointError(
        f"{folder} has no learned prior of its {level} level; "
        f"train one with `python -m vqvae train-prior {folder} --level {level}`"
    )


def load_prior_config(folder: str | Path, level: str | None = None) -> tuple[PriorConfig, TrainConfig | None]:
    """The prior's settings and how it was trained, checked against the folder's VQ-VAE."""
    folder = Path(folder)
    if not (folder / prior_file(level)).exists():
        raise _no_prior(folder, level)
    return read_prior_settings(folder, level)


def read_prior_settings(folder: str | Path, level: str | None = None) -> tuple[PriorConfig, TrainConfig | None]:
    """The prior settings config.json records, saved before the prior's first weights are: in sections
    "prior" and "prior_train", or "prior_top" and "prior_top_train" for a hierarchy's top level."""
    folder = Path(folder)
    raw = read_config(folder)
    section = prior_stem(level)
    if section not in raw:
        raise _no_prior(folder, level)
    training = "prior_train" if level is None else f"{section}_train"
    try:
        prior_config = prior_config_from_dict(raw[section])
        train = train_config_from_dict(raw[training], training) if raw.get(training) else None
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / CONFIG} has an invalid prior setting: {error}") from error
    config = load_config(folder).vqvae
    check_prior_matches(prior_config, config, folder / prior_file(level), level)
    return prior_config, train


def prior_sections(level: str | None, prior: PriorConfig, train: TrainConfig) -> dict[str, Any]:
    """The config.json sections of a prior's settings and training (read back by read_prior_settings)."""
    section = prior_stem(level)
    return {section: to_dict(prior), ("prior_train" if level is None else f"{section}_train"): to_dict(train)}


def load_prior(
    folder: str | Path,
    level: str | None = None,
    *,
    fingerprint: str | None = None,
    device: torch.device | str = "cpu",
) -> GatedPixelCNN:
    """The learned prior of a checkpoint folder (of one level of a hierarchy), in eval mode, checked against
    its VQ-VAE, on `device`. fingerprint: of the codebooks the prior was made from (the VQ-VAE's; for a level, that
    level's and those above it), read from the folder's weights when not given."""
    folder = Path(folder)
    config = load_prior_config(folder, level)[0]
    prior = GatedPixelCNN(config)
    path = folder / prior_file(level)
    tensors, metadata = read_tensors(path)
    recorded = metadata.get("level")
    if recorded != level and (recorded is not None or level is not None):
        mine = "of this one-level VQ-VAE" if level is None else f"of the {level} level"
        theirs = "a one-level VQ-VAE" if recorded is None else f"the {recorded} level"
        raise CheckpointError(f"{path} is the prior of {theirs}, not {mine}")
    again = "" if level is None else f" --level {level}"
    remedy = f"Train its prior again: delete the prior's files and run `python -m vqvae train-prior {folder}{again}`."
    check_made_from(path, metadata, fingerprint or folder_fingerprint(folder, level), remedy)
    embedding = tensors.get("embedding.weight")  # (K, E): one row per code of the VQ-VAE it was trained on
    if embedding is not None and embedding.ndim == 2 and embedding.shape[0] != config.num_embeddings:
        raise CheckpointError(
            f"{path} models {embedding.shape[0]} codes, but this VQ-VAE has {config.num_embeddings}: "
            "it is the prior of another VQ-VAE"
        )
    check_state_dict(prior, tensors, path)
    prior.load_state_dict(tensors)
    return prior.to(device).eval()
