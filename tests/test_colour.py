"""A colour model with long class names (tests/colour_checkpoint.py) through the explorer and the pages'
callbacks: every picture comes out in its own colours, uploads are fitted as colour pictures are, the
class names reach the pages, and the words say "image", not "digit"."""

from __future__ import annotations

import html

import numpy as np
import pytest

import app
from pages import atlas, reconstruct, sampling, usage
from pages.common import Shared
from tests.app_server import SHIPPED
from tests.colour_checkpoint import CLASS_NAMES, PATCH
from vqvae.app.catalog import Catalog
from vqvae.app.explorer import open_explorer
from vqvae.app.runs import RunManager
from vqvae.classifier import load_classifier


@pytest.fixture(scope="module")
def explorer(colour_run):
    return open_explorer(colour_run)


@pytest.fixture(scope="module")
def shared(colour_run, tmp_path_factory):
    """What the pages share, with the colour run's folder and the shipped mnist checkpoint in the catalog."""
    catalog = Catalog((app.ROOT / "checkpoints", colour_run.parent), colour_run.parent.parent)
    return Shared(catalog, RunManager(tmp_path_factory.mktemp("runs")))


@pytest.fixture(scope="module")
def colour(colour_run):
    """The colour run as the picker names it."""
    return f"{colour_run.parent.name}/{colour_run.name}"


def coloured(images: np.ndarray) -> bool:
    """Whether uint8 pictures (..., H, W, 3) are in colour: their channels differ by more than rounding."""
    pixels = images.reshape(-1, 3).astype(int)
    return images.shape[-1] == 3 and np.abs(pixels - pixels.mean(1, keepdims=True)).mean() > 4


def test_the_colour_checkpoint_is_what_the_tests_assume(explorer):
    config = explorer.checkpoint.config.model
    assert (config.in_channels, config.image_size) == (3, PATCH)
    assert explorer.class_names == list(CLASS_NAMES) and explorer.conditional
    assert explorer.fitting.kind == "colour" and explorer.fitting.noun == "image"
    assert {"learned", "unigram", "uniform"} <= set(explorer.priors)


def test_held_out_images_and_their_reconstructions_are_in_their_own_colours(explorer):
    stored = explorer.analysis.images.permute(0, 2, 3, 1).numpy()  # (N, C, H, W) -> (N, H, W, C)
    decoded = [explorer.reconstruct_heldout(i) for i in range(explorer.heldout_count)]
    inputs = np.stack([d.image for d in decoded])
    outputs = np.stack([d.reconstruction for d in decoded])
    assert np.array_equal(inputs, stored) and coloured(inputs) and coloured(outputs)

    # each pixel's colour, apart from its brightness, in the channels' order: the reconstructions' agrees
    # with the inputs', and not with the inputs' channels reversed (BGR) or turned
    chroma_in, chroma_out = inputs - inputs.mean(-1, keepdims=True), outputs - outputs.mean(-1, keepdims=True)
    assert agreement(chroma_out, chroma_in) > 0.7
    assert agreement(chroma_out, chroma_in[..., ::-1]) < 0 and agreement(chroma_out, np.roll(chroma_in, 1, -1)) < 0
    assert np.abs(chroma_out).mean() > 0.7 * np.abs(chroma_in).mean()  # as vivid: not faded towards grey


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of two arrays, seen as vectors: 1 when they are the same up to scale."""
    a, b = a.astype(float).ravel(), b.astype(float).ravel()
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def test_code_tiles_patches_sheets_samples_and_frames_are_in_colour(explorer):
    code = explorer.code(explorer.telling_code())
    assert code.tile.shape[-1] == 3 and coloured(code.exemplars) and coloured(code.nearest_tiles)
    assert coloured(explorer.tiles(list(range(explorer.num_embeddings))))
    sheet = explorer.sheet(columns=8, scale=4).tiles.image
    assert sheet.shape[-1] == 3 and coloured(sheet[sheet.min(-1) < 250])  # the tiles, not the white page
    for name, samples in explorer.compare(8, label=1, seed=3).items():
        assert samples.images.shape == (8, PATCH, PATCH, 3) and coloured(samples.images), name
    frames = explorer.sample_frames(label=0, seed=1)
    assert frames.images.shape[-1] == 3 and coloured(frames.images[-1])


def test_an_upload_is_fitted_whole_on_white_and_reconstructed(explorer):
    photo = np.zeros((60, 120, 3), dtype=np.uint8)  # wide: red left, blue right
    photo[:, :60] = (220, 30, 30)
    photo[:, 60:] = (30, 30, 220)
    decoded = explorer.reconstruct_picture(photo)
    fitted = decoded.image.astype(int)
    assert fitted.shape == (PATCH, PATCH, 3) and decoded.reconstruction.shape == (PATCH, PATCH, 3)
    assert (fitted[:3] > 245).all() and (fitted[-3:] > 245).all()  # white above and below, nothing cut off
    middle = fitted[PATCH // 2]
    assert middle[1, 0] > 200 > 60 > middle[1, 2] and middle[-2, 2] > 200 > 60 > middle[-2, 0]
    assert np.isfinite(decoded.psnr_db)


def test_the_learned_prior_draws_the_class_it_is_asked_for(explorer, colour_run):
    """Its classifier finds each class more often among samples asked for that class than among the other's."""
    import torch

    classifier = load_classifier(colour_run)
    chosen = {}
    for label in range(len(CLASS_NAMES)):
        images = explorer.sample("learned", 32, label=label, seed=7).images  # (n, H, W, C) uint8
        x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255
        chosen[label] = classifier(x).argmax(1)
    assert (chosen[0] == 0).float().mean() > (chosen[1] == 0).float().mean()
    assert (chosen[1] == 1).float().mean() > (chosen[0] == 1).float().mean()


# --- the pages' words and class names ---------------------------------------------------------


def test_reconstruct_says_image_on_a_colour_model_and_digit_on_mnist(shared, colour):
    slider, row, col, code, tab, caption, sketch, opened = reconstruct.limits(shared, colour)
    assert tab.label == "Held-out image" and "draw an image" in caption and "colour" in caption
    assert sketch.brush.color_mode == "defaults" and len(sketch.brush.colors) > 1
    *_, tab, caption, sketch, _ = reconstruct.limits(shared, SHIPPED)
    assert tab.label == "Held-out digit" and "draw a digit" in caption and "colour" not in caption
    assert sketch.brush.color_mode == "fixed" and sketch.brush.colors == ["#000000"]
    source = reconstruct.reconstruct_heldout(shared, colour, 0)[-1]
    assert any(f"class {name}" in source for name in CLASS_NAMES)
    slider, *_, opened = reconstruct.limits(shared, colour, 10_000)  # an image past this split's end
    assert opened == colour and slider.value == slider.maximum < 10_000


def test_sampling_offers_the_class_names_and_says_what_its_samples_look_like(shared, colour):
    text, steps, classes, *_ = sampling.open_checkpoint(shared, colour, 1.0, 4, 0)
    assert "top grid" not in steps and "top first" not in text  # one grid of codes
    assert classes.choices == [(c, c) for c in (sampling.ANY_CLASS, *CLASS_NAMES)]
    assert "look like real images" in text and "digit" not in text
    assert "look like real digits" in sampling.open_checkpoint(shared, SHIPPED, 1.0, 4, 0)[0]
    *_, player = sampling.redraw(shared, colour, CLASS_NAMES[1], 1.0, 4, 0)
    assert player["title"].startswith(f"class {CLASS_NAMES[1]}")


def test_usage_and_atlas_name_every_class(shared, colour):
    classes = usage.show_usage(shared, colour)[2]
    assert list(classes.data[0].y) == list(CLASS_NAMES)
    figure = atlas.atlas_figure(shared, colour, "pca", "dominant class", 0)
    legend = {html.unescape(trace.name.replace("<br>", " ")) for trace in figure.data if trace.customdata is not None}
    assert legend - {"unused"} == {f"class {name}" for name in CLASS_NAMES}  # long names wrap, whole
    # the legend's column is wider than for mnist's "class 0".."class 9", and the points' plot gives way
    assert figure.layout.legend.x < atlas.atlas_figure(shared, SHIPPED, "pca", "dominant class", 0).layout.legend.x
    assert figure.layout.xaxis.domain[1] < figure.layout.legend.x
