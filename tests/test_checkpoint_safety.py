"""Checkpoints from users: only safetensors and JSON load; every bad file is refused with our
CheckpointError naming the problem, and the model in use stays in use (a copy of the shipped folder).
How fast each kind is refused is measured by `python -m vqvae bench`, not here."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from vqvae import checkpoint as ckpt
from vqvae.analysis import ANALYSIS, load_analysis
from vqvae.app.explorer import Explorer, open_explorer
from vqvae.config import PriorConfig
from vqvae.errors import CheckpointError, VQVAEError
from vqvae.prior import GatedPixelCNN

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "mnist"
FILES = (ckpt.CONFIG, ckpt.WEIGHTS, ckpt.PRIOR, ckpt.CODES, ANALYSIS, ckpt.HISTORY, ckpt.METRICS)


@pytest.fixture
def folder(tmp_path):
    """A copy of the shipped checkpoint (its files only, ~10 MB), to break in each test."""
    copy = tmp_path / "mnist"
    copy.mkdir()
    for name in FILES:
        shutil.copy2(SHIPPED / name, copy / name)
    return copy


def refused(load, folder: Path, message: str) -> str:
    """load(folder) raises our CheckpointError matching `message`. (How fast: `python -m vqvae bench`.)"""
    with pytest.raises(CheckpointError, match=message) as caught:
        load(folder)
    assert isinstance(caught.value, VQVAEError)
    return str(caught.value)


def edit_config(folder: Path, edit) -> None:
    config = json.loads((folder / ckpt.CONFIG).read_text())
    edit(config)
    (folder / ckpt.CONFIG).write_text(json.dumps(config))


def test_the_copy_loads(folder):
    assert Explorer(folder).num_embeddings == 512


# --- code never runs ---------------------------------------------------------------------------


class Payload:
    """Unpickling this calls open(marker, "w"): the marker file appearing means code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_renamed_to_safetensors_is_refused_and_never_runs(folder, tmp_path, protocol):
    marker = tmp_path / "code-ran"
    (folder / ckpt.WEIGHTS).write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    refused(ckpt.load_checkpoint, folder, "pickle|not a valid safetensors file")
    assert not marker.exists()


def test_a_torch_save_file_is_refused_and_never_runs(folder, tmp_path):
    marker = tmp_path / "code-ran"
    torch.save({"weights": Payload(marker)}, folder / ckpt.PRIOR)
    assert not marker.exists()  # saving pickles the payload without running it
    message = refused(ckpt.load_prior, folder, "pickle")
    assert "prior.safetensors" in message and not marker.exists()


# --- damaged files ---------------------------------------------------------------------------


@pytest.mark.parametrize("keep,message", [(0.5, "not a valid safetensors file"), (20 / 1_181_645, "truncated")])
def test_a_truncated_weights_file_is_refused(folder, keep, message):
    data = (folder / ckpt.WEIGHTS).read_bytes()
    (folder / ckpt.WEIGHTS).write_bytes(data[: max(9, int(len(data) * keep))])
    refused(ckpt.load_checkpoint, folder, message)


@pytest.mark.parametrize("length", [2**40, 2**64 - 1, ckpt.MAX_HEADER_BYTES + 1])
def test_a_huge_header_length_is_refused_before_reading_it(folder, length):
    data = (folder / ckpt.WEIGHTS).read_bytes()
    (folder / ckpt.WEIGHTS).write_bytes(struct.pack("<Q", length) + data[8:])
    refused(ckpt.load_checkpoint, folder, f"header claims {length:,} bytes, more than the 8,388,608 accepted")


@pytest.mark.parametrize(
    "header,message",
    [
        (b"{not json", "header is not JSON"),
        (b"[1, 2, 3]", "not a JSON object of tensors"),
        (b'{"__metadata__": [1]}', "not a JSON object of tensors"),
        (b'{"w": {"dtype": "F32", "shape": [1000000], "data_offsets": [0, 4000000]}}', "not a valid safetensors"),
        (b'{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "x": NaN}', "header is not JSON"),
        (b"[" * 100_000, "header is not JSON"),
    ],
)
def test_a_malformed_header_is_refused(folder, header, message):
    (folder / ckpt.WEIGHTS).write_bytes(struct.pack("<Q", len(header)) + header + bytes(8))
    refused(ckpt.load_checkpoint, folder, message)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("file,load", [(ckpt.WEIGHTS, ckpt.load_checkpoint), (ckpt.PRIOR, ckpt.load_prior)])
def test_non_finite_weights_are_refused(folder, value, file, load):
    tensors, metadata = ckpt.read_tensors(folder / file)
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 1)
    tensors[name].view(-1)[3] = value
    save_file(tensors, str(folder / file), metadata=metadata)
    refused(load, folder, f"{file}: {name} holds NaN or Inf values")


def test_weights_of_another_dtype_are_refused(folder):
    tensors, metadata = ckpt.read_tensors(folder / ckpt.WEIGHTS)
    tensors["quantizer.embedding"] = tensors["quantizer.embedding"].half()
    save_file(tensors, str(folder / ckpt.WEIGHTS), metadata=metadata)
    refused(ckpt.load_checkpoint, folder, "quantizer.embedding is torch.float16, the model holds torch.float32")


def test_files_over_the_size_caps_are_refused(folder, monkeypatch):
    monkeypatch.setattr(ckpt, "MAX_FILE_BYTES", 1_000_000)  # the shipped weights are 1.2 MB
    refused(ckpt.load_checkpoint, folder, "vqvae.safetensors is 1 MB, more than the 1 MB accepted")
    monkeypatch.setattr(ckpt, "MAX_JSON_BYTES", 1000)  # config.json is 1.4 KB
    refused(ckpt.load_checkpoint, folder, "config.json is 0 MB, more than the 0 MB accepted")


def test_a_file_linked_from_outside_the_folder_is_refused(folder, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    (folder / ckpt.WEIGHTS).rename(outside)
    os.symlink(outside, folder / ckpt.WEIGHTS)
    refused(ckpt.load_checkpoint, folder, "link out of its checkpoint folder")


# --- weights and settings that do not match ---------------------------------------------------------


@pytest.mark.parametrize(
    "setting,value,message",
    [
        ("num_embeddings", 256, r"codebook of shape \(512, 64\), but config.json asks for K = 256 codes of D = 64"),
        ("embedding_dim", 32, r"codebook of shape \(512, 64\), but config.json asks for K = 512 codes of D = 32"),
    ],
)
def test_weights_for_another_k_or_d_are_refused(folder, setting, value, message):
    edit_config(folder, lambda c: c["vqvae"]["quantizer"].update({setting: value}))
    refused(ckpt.load_checkpoint, folder, message)


def test_a_grid_that_does_not_match_is_refused(folder):
    """image_size 32 makes an 8x8 grid from the same weights (convolutions fit any size): the analysis,
    the code grids and the prior were all made for 7x7, and the folder is refused when opened."""
    edit_config(folder, lambda c: c["vqvae"]["model"].update(image_size=32))
    refused(Explorer, folder, r"does not match this VQ-VAE|\(8, 8\)")
    (folder / ANALYSIS).unlink()
    refused(ckpt.load_prior, folder, r"the prior models \(7, 7\) grids of 512 codes, but this VQ-VAE makes \(8, 8\)")


@pytest.mark.parametrize(
    "change,message",
    [
        ({"num_embeddings": 256}, r"the prior models \(7, 7\) grids of 256 codes, but this VQ-VAE makes \(7, 7\)"),
        ({"latent_height": 8}, r"the prior models \(8, 7\) grids of 512 codes"),
    ],
)
def test_a_prior_configured_for_another_vqvae_is_refused(folder, change, message):
    edit_config(folder, lambda c: c["prior"].update(change))
    refused(ckpt.load_prior, folder, message)
    refused(Explorer, folder, message)


def test_files_made_from_another_codebook_are_refused(folder):
    """The same K, D and grid, a different codebook: the VQ-VAE trained on since (here one code moved)
    after its code grids, prior and analysis were made. Each of them is refused, and the folder with them."""
    tensors, metadata = ckpt.read_tensors(folder / ckpt.WEIGHTS)
    tensors[ckpt.CODEBOOK][7] += 0.01
    ckpt.write_tensors(folder / ckpt.WEIGHTS, tensors, metadata)
    loaded = ckpt.load_checkpoint(folder)  # the VQ-VAE itself is fine
    made_from = r"was made from another codebook \(42bf46b3b6f7073c\) than this VQ-VAE's \([0-9a-f]{16}\)"
    assert "train-prior" in refused(ckpt.load_prior, folder, f"prior.safetensors {made_from}")
    refused(lambda f: ckpt.load_codes(f, loaded.config), folder, f"codes.safetensors {made_from}")
    refused(lambda f: load_analysis(f, loaded.model), folder, f"analysis.safetensors {made_from}.*analyse")
    refused(Explorer, folder, made_from)


def test_a_prior_copied_from_another_folder_is_refused(folder):
    """A prior of another VQ-VAE with the same K and grid cannot be told from the shapes: its fingerprint tells."""
    tensors, metadata = ckpt.read_tensors(folder / ckpt.PRIOR)
    ckpt.write_tensors(folder / ckpt.PRIOR, tensors, metadata | {"codebook": "0123456789abcdef"})
    refused(ckpt.load_prior, folder, r"prior.safetensors was made from another codebook \(0123456789abcdef\)")
    refused(Explorer, folder, "another codebook")


def test_the_shipped_files_record_their_codebook(folder):
    codebook = ckpt.folder_fingerprint(folder)
    for name in (ckpt.CODES, ckpt.PRIOR, ANALYSIS):
        assert ckpt.read_tensors(folder / name)[1]["codebook"] == codebook, name
    assert ckpt.read_json(folder / ckpt.METRICS)["measured"] == ckpt.measured_files(folder)


def test_prior_weights_of_another_vqvae_are_refused(folder):
    """prior.safetensors copied from a checkpoint with K = 32 codes, config.json left as it was."""
    other = GatedPixelCNN(PriorConfig(num_embeddings=32, latent_height=7, latent_width=7, num_classes=10))
    ckpt.save_prior(folder, other, step=1)
    message = "prior.safetensors models 32 codes, but this VQ-VAE has 512: it is the prior of another VQ-VAE"
    refused(ckpt.load_prior, folder, message)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["vqvae"]["quantizer"].update(num_embeddings="512"), r"vqvae.quantizer.num_embeddings must be int"),
        (lambda c: c["vqvae"]["quantizer"].update(num_embeddings=512.5), "vqvae.quantizer.num_embeddings must be int"),
        (lambda c: c["vqvae"]["quantizer"].update(num_embeddings=True), "vqvae.quantizer.num_embeddings must be int"),
        (lambda c: c["vqvae"]["quantizer"].update(num_embeddings=None), "vqvae.quantizer.num_embeddings must be int"),
        (lambda c: c["vqvae"]["quantizer"].update(num_embeddings=10**9), "num_embeddings \\(K\\) must be at most"),
        (lambda c: c["vqvae"]["quantizer"].update(commitment_cost=[0.25]), "commitment_cost must be float"),
        (lambda c: c["vqvae"]["quantizer"].update(decay=float("inf")), "Infinity is not a JSON number"),
        (lambda c: c["vqvae"]["quantizer"].update(update="sgd"), "update must be one of"),
        (lambda c: c["vqvae"]["model"].update(image_size=-28), "image_size -28 must be a multiple"),
        (lambda c: c["vqvae"]["model"].update(colour="blue"), r"vqvae.model has unknown settings \['colour'\]"),
        (lambda c: c["vqvae"].update(model=[1, 2]), "vqvae.model must be an object, not list"),
        (lambda c: c["vqvae"].pop("quantizer"), "exactly two sections, model and quantizer"),
        (lambda c: c.update(vqvae="mnist"), "exactly two sections"),
        (lambda c: c.pop("vqvae"), "exactly two sections"),
        (lambda c: c["train"].update(steps="many"), "train.steps must be int or None"),
        (lambda c: c["train"].update(batch_size=0), "batch_size must be between"),
        (lambda c: c.update(extra=[1, 2]), "extra must be an object, not list"),
        (lambda c: c["extra"].update(class_names=7), "extra.class_names must be a list of strings"),
        (lambda c: c["extra"].update(data_variance="high"), "extra.data_variance must be a number"),
        (lambda c: c.update(format_version="1"), "format_version '1' is not 1"),
    ],
)
def test_every_bad_setting_in_config_json_is_named(folder, edit, message):
    edit_config(folder, edit)
    text = refused(ckpt.load_checkpoint, folder, message)
    assert "config.json" in text


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["prior"].update(num_layers="8"), "prior.num_layers must be int"),
        (lambda c: c["prior"].update(kernel_size=4), "kernel_size must be odd"),
        (lambda c: c["prior"].pop("num_embeddings"), "prior.num_embeddings is missing"),
        (lambda c: c.update(prior=None), "prior must be an object, not NoneType"),
        (lambda c: c["prior_train"].update(learning_rate="fast"), "prior_train.learning_rate must be float"),
    ],
)
def test_every_bad_prior_setting_is_named(folder, edit, message):
    edit_config(folder, edit)
    refused(ckpt.load_prior, folder, message)


@pytest.mark.parametrize(
    "name,content,message",
    [
        (ckpt.CONFIG, b"\xff\xfe not text", "config.json is not valid JSON"),
        (ckpt.CONFIG, b'{"format_version": NaN}', "config.json is not valid JSON"),
        (ckpt.CONFIG, (SHIPPED / ckpt.CONFIG).read_bytes().replace(b"0.99", b"1e999"), "decay must be a finite"),
        (ckpt.CONFIG, b"[" * 100_000, "config.json is not valid JSON"),
        (ckpt.HISTORY, b'{"step": 1}', "history.json is not a list of training records"),
        (ckpt.METRICS, b"[1, 2]", "metrics.json is not a JSON object"),
    ],
)
def test_json_files_that_are_not_what_they_should_be_are_refused(folder, name, content, message):
    (folder / name).write_bytes(content)
    refused(ckpt.load_checkpoint, folder, message)


# --- the model in use stays in use -------------------------------------------------------------------


def test_a_folder_broken_while_open_is_refused_until_mended(folder, tmp_path):
    """open_explorer reloads a folder whose files changed: a bad new file is refused with our message
    (never served as if it loaded), other folders keep answering, and the mended folder opens again."""
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    good = (folder / ckpt.WEIGHTS).read_bytes()
    before = open_explorer(folder).reconstruct_heldout(0).indices
    answer_of_other = open_explorer(other).reconstruct_heldout(0).indices

    (folder / ckpt.WEIGHTS).write_bytes(good[: len(good) // 2])
    for _ in range(2):  # refused each time, not once and then served stale
        refused(open_explorer, folder, "vqvae.safetensors is not a valid safetensors file")
    assert (open_explorer(other).reconstruct_heldout(0).indices == answer_of_other).all()

    (folder / ckpt.WEIGHTS).write_bytes(good)
    assert (open_explorer(folder).reconstruct_heldout(0).indices == before).all()
