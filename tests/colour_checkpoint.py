"""A small colour checkpoint on real photographs, for the tests that need a 3-channel model with class
names that are not digits (and as long as Fashion-MNIST's or the emoji groups'): 16x16 patches cut from
scikit-learn's two sample photographs (a Chinese temple, a flower), one class folder each, then the whole
pipeline (VQ-VAE, evaluation, a PCA analysis, a class-conditional prior and its classifier) in a few
seconds of training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vqvae.config import ModelConfig, QuantizerConfig, TrainConfig, VQVAEConfig, prior_training
from vqvae.jobs import Job, PriorJob, run

PHOTOS = {"china": "Chinese Temple & Sky", "flower": "Dahlia Flower Petals"}  # class folder of each photograph
CLASS_NAMES = tuple(sorted(PHOTOS.values()))
PATCH = 16
PATCHES_PER_CLASS = 160
MIN_SPREAD = 20  # the least standard deviation of a patch's values (0-255) that is kept


def write_patches(folder: Path, per_class: int = PATCHES_PER_CLASS, size: int = PATCH) -> Path:
    """`per_class` PNG patches of each photograph (each shrunk 4 times first, so a patch holds a
    recognisable piece of it), in one subfolder per class: a `folder:` source. Flat patches (clear sky)
    are passed over: every patch shows something."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images()
    rng = np.random.default_rng(0)
    for name, photo in zip(photos.filenames, photos.images):
        label = PHOTOS[Path(name).stem]
        picture = Image.fromarray(photo)
        small = np.asarray(picture.resize((picture.width // 4, picture.height // 4), Image.LANCZOS))
        (folder / label).mkdir(parents=True, exist_ok=True)
        kept = 0
        while kept < per_class:
            top, left = rng.integers(0, small.shape[0] - size), rng.integers(0, small.shape[1] - size)
            patch = small[top : top + size, left : left + size]
            if patch.std() >= MIN_SPREAD:
                Image.fromarray(patch).save(folder / label / f"{kept:03d}.png")
                kept += 1
    return folder


def train_colour(folder: Path, data: Path) -> Path:
    """A tiny 3-channel VQ-VAE (16x16 -> an 8x8 grid of K = 64 codes) trained on the patches in `data`,
    evaluated, analysed (PCA), with a class-conditional prior and the classifier that scores its samples."""
    config = VQVAEConfig(
        model=ModelConfig(
            in_channels=3,
            image_size=PATCH,
            downsample=2,  # an 8x8 grid: a 4x4 one of so few codes loses most of the colour
            hidden_channels=32,
            residual_channels=16,
            num_residual_blocks=1,
        ),
        quantizer=QuantizerConfig(num_embeddings=64, embedding_dim=16, dead_code_steps=10),
    )
    source = f"folder:{data}"
    train = TrainConfig(data=source, steps=400, batch_size=32, learning_rate=3e-3, log_every=20, save_every=400)
    layers = {"hidden_channels": 32, "embedding_dim": 16, "num_layers": 6}  # 6 layers of 3x3 see most of an 8x8 grid
    prior = PriorJob(prior_training(source, steps=150, batch_size=32), layers, classifier_steps=40)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small layers on a busy machine: a second thread only waits for the first
    try:
        run(Job(folder, vqvae=config, train=train, with_umap=False, prior=prior))
    finally:
        torch.set_num_threads(threads)
    return folder
