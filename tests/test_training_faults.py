"""A NaN at step k is caught at step k, and nothing non-finite is ever saved (vqvae/train.py)."""

import dataclasses

import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.config import DataFacts, PriorConfig
from vqvae.data import load_split, pixel_variance
from vqvae.errors import TrainingError
from vqvae.model import VQVAE
from vqvae.prior import GatedPixelCNN
from vqvae.prior_training import PriorTask, prepare_codes
from vqvae.train import Task, VQVAETask, train_loop, train_vqvae

K = 13  # the poisoned step (1-based), after the periodic save of step 10
SAVE_EVERY = 5


class PoisonedAt(Task):
    """Another task, unchanged except at step `k`: its batch, its loss or its gradients turn NaN there."""

    def __init__(self, inner: Task, k: int, where: str):
        self.inner, self.k, self.where = inner, k, where
        self.model = inner.model
        self.weights_file, self.state_file, self.history_file = inner.weights_file, inner.state_file, inner.history_file
        self.step = 0
        self.hook = None

    def batch(self, step: int):
        self.step = step + 1
        batch = self.inner.batch(step)
        if self.step == self.k and self.where == "batch":
            batch = batch.clone()
            batch[0, 0, 0, 0] = float("nan")  # one pixel of one image
        return batch

    def loss(self, network, batch):
        loss, scalars = self.inner.loss(network, batch)
        if self.step == self.k and self.where == "loss":
            loss = loss * float("nan")
        if self.step == self.k and self.where == "gradients":  # the loss stays finite; its gradients do not
            first = next(self.model.parameters())
            self.hook = first.register_hook(lambda grad: grad * float("nan"))
        return loss, scalars

    def window_metrics(self):
        return self.inner.window_metrics()

    def window_tensors(self):
        return self.inner.window_tensors()

    def save_weights(self, folder, step, elapsed_s):
        self.inner.save_weights(folder, step, elapsed_s)


def every_saved_tensor_is_finite(folder):
    for path in folder.glob("*.safetensors"):
        for name, tensor in ckpt.read_tensors(path)[0].items():
            assert not tensor.is_floating_point() or torch.isfinite(tensor).all(), f"{path.name}: {name}"


def saved_step(folder, name):
    return int(ckpt.read_tensors(folder / name)[1]["step"])


@pytest.fixture(scope="module")
def digits():
    return load_split("digits", 8, 1)


def vqvae_run(tiny, folder, digits):
    """What train_vqvae sets up, with its task at hand to be poisoned."""
    train = dataclasses.replace(tiny.train, steps=30, save_every=SAVE_EVERY)
    images = digits.train.images
    variance = pixel_variance(images)
    facts = DataFacts(variance, list(digits.train.class_names), len(images))
    ckpt.save_config(folder, tiny.vqvae, train, facts)
    torch.manual_seed(train.seed)
    return VQVAETask(VQVAE(tiny.vqvae), images, train, variance), train


@pytest.mark.parametrize("where", ["batch", "loss", "gradients"])
def test_a_nan_at_step_k_stops_the_vqvae_at_step_k_and_keeps_the_save_before_it(tiny, tmp_path, digits, where):
    folder = tmp_path / "run"
    task, train = vqvae_run(tiny, folder, digits)
    events = []
    with pytest.raises(TrainingError, match=f"became nan at step {K}; .*checkpoint \\(step 10\\) was kept"):
        train_loop(PoisonedAt(task, K, where), train, folder, on_event=events.append)
    assert [e.step for e in events if e.kind == "save"] == [5, 10]
    assert max(e.step for e in events) < K  # nothing reported, let alone saved, from the poisoned step on
    assert saved_step(folder, ckpt.WEIGHTS) == saved_step(folder, ckpt.TRAIN_STATE) == 10
    assert [row["step"] for row in ckpt.read_json(folder / ckpt.HISTORY)] == [5, 10]
    every_saved_tensor_is_finite(folder)  # weights, EMA buffers, Adam's moments, RNG
    loaded = ckpt.load_checkpoint(folder)
    assert loaded.step == 10

    train_vqvae(tiny.vqvae, train, folder, resume=True, data=digits)  # the fault gone, the run goes on
    assert ckpt.load_checkpoint(folder).step == 30


def test_a_nan_in_the_prior_at_step_k_stops_it_at_step_k(tiny, tmp_path):
    folder = tmp_path / "run"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=10), folder)
    codebook = ckpt.folder_fingerprint(folder)
    codes = prepare_codes(folder, codebook)
    config = PriorConfig(tiny.vqvae.quantizer.num_embeddings, *tiny.vqvae.latent_shape, hidden_channels=8, num_layers=2)
    train = dataclasses.replace(tiny.train, steps=30, save_every=SAVE_EVERY, batch_size=32)
    torch.manual_seed(0)
    task = PriorTask(GatedPixelCNN(config), codes.train, None, train, codebook)
    for where in ("loss", "gradients"):
        with pytest.raises(TrainingError, match=f"became nan at step {K};"):
            train_loop(PoisonedAt(task, K, where), train, folder)
        assert saved_step(folder, ckpt.PRIOR) == saved_step(folder, ckpt.PRIOR_STATE) == 10
        every_saved_tensor_is_finite(folder)
        for name in (ckpt.PRIOR, ckpt.PRIOR_STATE, ckpt.PRIOR_HISTORY):
            (folder / name).unlink()
        task = PriorTask(GatedPixelCNN(config), codes.train, None, train, codebook)
