"""The Explorer on a tiny checkpoint with a learned, class-conditional prior: what the app asks of it."""

import dataclasses
import math
import os
import re
import shutil

import numpy as np
import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.analysis import ANALYSIS, analyse_checkpoint
from vqvae.app.explorer import MAX_SAMPLES, Explorer, open_explorer
from vqvae.config import TrainConfig, preset
from vqvae.errors import CheckpointError, InputError
from vqvae.evaluate import evaluate_checkpoint
from vqvae.images import FRAME, MARK
from vqvae.prior_training import train_prior
from vqvae.train import train_vqvae

from .helpers import snapshot

K, H, W, SIZE = 32, 4, 4, 8  # digits-tiny: 8x8 digits, a 4x4 grid of K = 32 codes
SMALL_PRIOR = {"hidden_channels": 16, "embedding_dim": 16, "num_layers": 4}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    tiny = preset("digits-tiny")
    folder = tmp_path_factory.mktemp("explorer") / "run"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=60), folder)
    prior_training = TrainConfig(data=tiny.train.data, steps=40, batch_size=64, learning_rate=3e-3, save_every=40)
    train_prior(folder, prior_training, settings=SMALL_PRIOR)
    analyse_checkpoint(folder, with_umap=False)
    return folder


@pytest.fixture(scope="module")
def explorer(folder):
    return Explorer(folder)


@pytest.fixture
def copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def test_the_checkpoint_is_what_the_tests_assume(explorer):
    assert explorer.num_embeddings == K and explorer.latent_shape == (H, W)
    assert explorer.conditional and explorer.class_names == [str(i) for i in range(10)]
    assert explorer.heldout_count == 179 and set(explorer.priors) == {"uniform", "unigram", "learned"}


# --- reconstructions and edits -----------------------------------------------------------


@pytest.mark.parametrize("index", [0, 100, 178])
def test_reconstruct_heldout_encodes_that_image(explorer, index):
    decoded = explorer.reconstruct_heldout(index)
    x = explorer.analysis.images[index][None].float() / 255  # (1, 1, 8, 8)
    with torch.no_grad():
        indices = explorer.model.encode(x)
        x_hat = explorer.model.decode_indices(indices).clamp(0, 1)
    assert decoded.indices.dtype == np.int64 and np.array_equal(decoded.indices, indices[0].numpy())
    assert np.array_equal(decoded.image, explorer.analysis.images[index].permute(1, 2, 0).numpy())
    assert np.array_equal(decoded.reconstruction, x_hat[0].permute(1, 2, 0).mul(255).round().byte().numpy())
    assert decoded.psnr_db == pytest.approx(10 * math.log10(1 / float((x_hat - x).pow(2).mean())), rel=1e-6)
    assert np.array_equal(decoded.indices, explorer.analysis.indices[index].numpy())  # as the analysis has it


def test_decoding_a_reconstructions_own_codes_gives_it_back(explorer):
    before = explorer.reconstruct_heldout(7)
    again = explorer.decode(before.indices, reference=before.image)
    assert np.array_equal(again.reconstruction, before.reconstruction)
    assert np.array_equal(again.indices, before.indices)
    assert again.psnr_db == pytest.approx(before.psnr_db, rel=1e-6)
    assert explorer.decode(before.indices.tolist()).psnr_db is None  # no reference: no PSNR


def test_set_code_changes_exactly_one_cell(explorer):
    grid = explorer.reconstruct_heldout(3).indices
    kept = grid.copy()
    new = (int(grid[1, 2]) + 1) % K
    edited = explorer.set_code(grid, 1, 2, new)
    assert np.array_equal(grid, kept)  # the caller's grid is not edited in place
    assert edited[1, 2] == new and np.count_nonzero(edited != grid) == 1
    assert np.count_nonzero(explorer.decode(edited).reconstruction != explorer.decode(grid).reconstruction) > 0
    assert np.array_equal(explorer.set_code(grid.tolist(), 1.0, 2.0, float(new)), edited)  # numbers as the UI sends


def test_replace_code_changes_every_use_and_nothing_else(explorer):
    grid = explorer.reconstruct_heldout(11).indices
    values, counts = np.unique(grid, return_counts=True)
    old = int(values[counts.argmax()])
    new = next(k for k in range(K) if k not in grid)
    edited = explorer.replace_code(grid, old, new)
    assert np.array_equal(edited, np.where(grid == old, new, grid))
    assert np.count_nonzero(edited != grid) == counts.max() and old not in edited
    assert np.array_equal(explorer.replace_code(grid, new, old), grid)  # a code not in the grid: nothing to do


GOOD = np.zeros((H, W), dtype=np.int64)


BAD_REQUESTS = {
    "code -1": lambda e: e.check_code(-1),
    "code K": lambda e: e.check_code(K),
    "code 1.5": lambda e: e.check_code(1.5),
    "code None": lambda e: e.check_code(None),
    "code text": lambda e: e.check_code("three"),
    "code NaN": lambda e: e.check_code(float("nan")),
    "code info K": lambda e: e.code(K),
    "row h": lambda e: e.set_code(GOOD, H, 0, 1),
    "col -1": lambda e: e.set_code(GOOD, 0, -1, 1),
    "row 0.5": lambda e: e.set_code(GOOD, 0.5, 0, 1),
    "set code K": lambda e: e.set_code(GOOD, 0, 0, K),
    "replace with -1": lambda e: e.replace_code(GOOD, 0, -1),
    "replace K+5": lambda e: e.replace_code(GOOD, K + 5, 0),
    "held-out -1": lambda e: e.reconstruct_heldout(-1),
    "held-out 179": lambda e: e.reconstruct_heldout(179),
    "held-out 2.5": lambda e: e.reconstruct_heldout(2.5),
    "held-out text": lambda e: e.reconstruct_heldout("first"),
    "label of 179": lambda e: e.heldout_label(179),
    "grid too wide": lambda e: e.decode(np.zeros((H, W + 1), dtype=np.int64)),
    "grid 3-d": lambda e: e.decode(np.zeros((1, H, W), dtype=np.int64)),
    "grid empty": lambda e: e.decode([]),
    "grid holds K": lambda e: e.decode(np.full((H, W), K)),
    "grid holds -1": lambda e: e.decode(np.full((H, W), -1)),
    "grid holds 1.5": lambda e: e.decode(np.full((H, W), 1.5)),
    "grid holds NaN": lambda e: e.decode(np.full((H, W), np.nan)),
    "grid holds text": lambda e: e.decode([["a"] * W] * H),
    "grid ragged": lambda e: e.decode([[0] * W] * (H - 1) + [[0] * (W - 1)]),
    "set code on 0.5 grid": lambda e: e.set_code(np.full((H, W), 0.5), 0, 0, 1),
    "pixel x -1": lambda e: e.cell_at(-1, 0),
    "pixel y 8": lambda e: e.cell_at(0, SIZE),
    "pixel x 8.5": lambda e: e.cell_at(SIZE + 0.5, 3),
    "pixel NaN": lambda e: e.cell_at(float("nan"), 3),
    "pixel text": lambda e: e.cell_at("left", 3),
    "projection tsne": lambda e: e.projection("tsne"),
}


@pytest.mark.parametrize("request_", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_raise_input_error(explorer, request_):
    with pytest.raises(InputError):
        request_(explorer)


def test_cell_at_maps_pixels_to_the_cell_under_them(explorer):
    cell = SIZE // H  # each latent cell covers 2x2 pixels
    for row in range(H):
        for col in range(W):
            top, left = row * cell, col * cell
            for x, y in [(left, top), (left + cell - 0.01, top + cell - 0.01), (left + 0.5, top + 1)]:
                assert explorer.cell_at(x, y) == (row, col)
    assert explorer.cell_at(0, 0) == (0, 0) and explorer.cell_at(7.99, 7.99) == (3, 3)
    assert explorer.cell_at(2, 0) == (0, 1) and explorer.cell_at(0, 2) == (1, 0)  # x is the column, y the row


# --- the codebook -------------------------------------------------------------------------


def test_code_info_agrees_with_the_analysis(explorer):
    a = explorer.analysis
    for k in range(K):
        info = explorer.code(k)
        assert info.code == k and info.usage == int(a.usage[k])
        assert info.usage_fraction == pytest.approx(int(a.usage[k]) / (179 * H * W))
        assert len(info.exemplars) == int(a.exemplar_count[k]) and k not in info.nearest
        assert info.tile.shape == (6, 6, 1) and sum(info.usage_by_class) == info.usage


def test_usage_order_summary_and_dominant_class(explorer):
    usage = explorer.analysis.usage.tolist()
    order = explorer.usage_order()
    assert sorted(order) == list(range(K))
    assert all((-usage[a], a) < (-usage[b], b) for a, b in zip(order, order[1:]))  # most used first, ties by code
    summary = explorer.usage_summary()
    assert summary["counts"] == usage and summary["latents"] == 179 * H * W
    assert summary["codes_used"] + summary["dead_codes"] == K
    assert summary["codes_used"] == sum(u > 0 for u in usage)
    assert all(sum(shares) == pytest.approx(1.0) for shares in summary["class_shares"])
    by_class = explorer.analysis.usage_by_class
    for k, c in enumerate(explorer.dominant_class()):
        assert c == (int(by_class[:, k].argmax()) if usage[k] else -1)


@pytest.mark.parametrize("columns, per_page", [(32, None), (5, 12), (1, 7)])
def test_sheet_pages_hold_every_tile_once_most_used_first(explorer, columns, per_page):
    pages = [explorer.sheet("usage", columns, page, per_page, scale=3) for page in range(-(-K // (per_page or K)))]
    order = [k for sheet in pages for k in sheet.order]
    assert order == explorer.usage_order() and all(sheet.pages == len(pages) for sheet in pages)
    usage = explorer.analysis.usage
    assert all(int(usage[a]) >= int(usage[b]) for a, b in zip(order, order[1:]))
    sheet = pages[0]
    grid = sheet.tiles
    assert grid.columns == min(columns, len(sheet.order)) and grid.image.shape[2] == 3
    for i, k in enumerate(sheet.order):  # each tile enlarged 3 times inside its frame, its number in a strip below
        top, left = (i // grid.columns) * grid.height + FRAME, (i % grid.columns) * grid.width + FRAME
        tile = np.repeat(np.repeat(explorer.code(k).tile, 3, 0), 3, 1)  # (6, 6, 1) -> (18, 18, 1)
        assert np.array_equal(grid.image[top : top + 18, left : left + 18], np.repeat(tile, 3, 2))
        assert grid.slot_at(left + 9, top + 9) == i and grid.slot_at(left + 9, top + 18 + FRAME + 8) == i
    assert explorer.sheet("code").order == list(range(K))


def test_the_sheet_opens_on_the_chosen_code_and_frames_it(explorer):
    sheet = explorer.sheet("code", 4, page=None, per_page=8, chosen=13, scale=2)
    assert sheet.page == 1 and sheet.order == list(range(8, 16))
    grid, slot = sheet.tiles, sheet.order.index(13)
    top, left = (slot // 4) * grid.height, (slot % 4) * grid.width
    assert tuple(grid.image[top, left]) == MARK and tuple(grid.image[0, 0]) == (255, 255, 255)
    with pytest.raises(InputError, match="does not exist"):
        explorer.sheet("code", chosen=K)
    with pytest.raises(InputError, match="page"):
        explorer.sheet("code", page=5, per_page=8)


def test_the_telling_code_is_busy_and_has_the_most_contrast_among_busy_codes(explorer):
    k = explorer.telling_code()
    usage = explorer.analysis.usage.double()
    contrast = explorer.analysis.tiles.flatten(1).float().std(1)
    busy = usage >= usage[usage > 0].quantile(0.75)
    assert busy[k] and contrast[k] == contrast[busy].max() and k != explorer.analysis.background_code


def test_main_code_and_changed_cells(explorer):
    grid = explorer.analysis.indices[0]
    k = explorer.main_code(0)
    assert k != explorer.analysis.background_code and (grid == k).any()
    counts = torch.bincount(grid.reshape(-1), minlength=K)
    counts[explorer.analysis.background_code] = 0
    assert counts[k] == counts.max()
    edited = explorer.replace_code(grid.numpy(), k, (k + 1) % K)
    assert explorer.changed_cells(grid.numpy(), edited) == [tuple(c) for c in torch.nonzero(grid == k).tolist()]


def test_projection_is_the_analysis_pca(explorer):
    xy = explorer.projection("pca")
    assert xy.shape == (K, 2) and np.array_equal(xy, explorer.analysis.projections["pca"].numpy())


# --- priors -------------------------------------------------------------------------------


def test_heldout_bits_of_the_three_priors(explorer):
    bits = explorer.heldout_bits
    assert set(bits) == {"uniform", "unigram", "learned"}
    assert abs(bits["uniform"] - math.log2(K)) < 1e-4
    assert bits["unigram"] < bits["uniform"] and bits["learned"] < bits["uniform"]
    unigram = explorer.priors["unigram"].priors[None]  # the one grid's
    expected = -unigram.log_prob(explorer.analysis.indices).mean() / (H * W * math.log(2))
    assert bits["unigram"] == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("prior", ["uniform", "unigram", "learned"])
def test_sampling_is_reproducible_by_seed(explorer, prior):
    a = explorer.sample(prior, 6, label=3, seed=5)
    b = explorer.sample(prior, 6, label=3, seed=5)
    c = explorer.sample(prior, 6, label=3, seed=6)
    assert a.prior == prior and a.images.shape == (6, SIZE, SIZE, 1) and a.indices.shape == (6, H, W)
    assert np.array_equal(a.indices, b.indices) and np.array_equal(a.images, b.images)
    assert a.bits_per_latent == b.bits_per_latent and math.isfinite(a.bits_per_latent)
    assert not np.array_equal(a.indices, c.indices)
    with torch.no_grad():
        decoded = explorer.model.decode_indices(torch.as_tensor(a.indices)).clamp(0, 1)
    assert np.array_equal(a.images, decoded.permute(0, 2, 3, 1).mul(255).round().byte().numpy())


def test_the_learned_prior_samples_with_the_priors_own_draw(explorer):
    samples = explorer.sample("learned", 4, label=7, temperature=0.8, seed=9)
    direct = explorer.priors["learned"].priors[None].sample(4, labels=torch.full((4,), 7), temperature=0.8, seed=9)
    assert np.array_equal(samples.indices, direct.numpy())
    with torch.no_grad():
        expected = -explorer.priors["learned"].priors[None].log_prob(direct, torch.full((4,), 7)).mean() / (
            H * W * math.log(2)
        )
    assert samples.bits_per_latent == pytest.approx(float(expected), rel=1e-5)


def test_temperature_zero_is_deterministic(explorer):
    a = explorer.sample("learned", 3, label=2, temperature=0, seed=1)
    b = explorer.sample("learned", 3, label=2, temperature=0, seed=2)
    assert np.array_equal(a.indices, b.indices)
    assert all(np.array_equal(grid, a.indices[0]) for grid in a.indices)  # greedy: one grid per class


def test_any_class_draws_classes_from_the_seed(explorer):
    """label None on a class-conditional checkpoint ("any" in the app) works for all three priors."""
    for prior in ("uniform", "unigram", "learned"):
        a, b = explorer.sample(prior, 8, label=None, seed=4), explorer.sample(prior, 8, label=None, seed=4)
        assert np.array_equal(a.indices, b.indices) and math.isfinite(a.bits_per_latent)
    frames = explorer.sample_frames(label=None, seed=4)
    assert (frames.indices[-1] >= 0).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": 0},
        {"n": MAX_SAMPLES + 1},
        {"n": 2.5},
        {"n": "many"},
        {"prior": "gaussian"},
        {"prior": None},
        {"temperature": -0.1},
        {"temperature": float("nan")},
        {"temperature": float("inf")},
        {"temperature": 11},
        {"temperature": "hot"},
        {"label": 10},
        {"label": -1},
        {"label": 1.5},
        {"seed": 0.5},
        {"seed": 2**64},
    ],
    ids=lambda kwargs: ",".join(f"{k}={v!r}" for k, v in kwargs.items()),
)
def test_bad_sampling_requests_raise_input_error(explorer, kwargs):
    request = {"prior": "learned", "n": 2, "label": 0, "temperature": 1.0, "seed": 0} | kwargs
    with pytest.raises(InputError):
        explorer.sample(**request)


def test_sample_frames_fill_the_grid_in_raster_order(explorer):
    frames = explorer.sample_frames(label=4, temperature=1.0, seed=3)
    steps = H * W
    assert frames.indices.shape == (steps + 1, H, W) and frames.images.shape == (steps + 1, SIZE, SIZE, 1)
    assert (frames.indices[0] == -1).all() and (frames.indices[-1] >= 0).all()
    last = frames.indices[-1].reshape(-1)
    for t, frame in enumerate(frames.indices):
        drawn = frame.reshape(-1) >= 0
        assert np.array_equal(drawn, np.arange(steps) < t)  # exactly the first t positions
        assert np.array_equal(frame.reshape(-1)[drawn], last[:t])
    grid = explorer.priors["learned"].priors[None].sample(1, labels=torch.tensor([4]), temperature=1.0, seed=3)
    assert np.array_equal(frames.indices[-1], grid[0].numpy())
    with torch.no_grad():
        decoded = explorer.model.decode_indices(grid).clamp(0, 1)
    assert np.array_equal(frames.images[-1], decoded[0].permute(1, 2, 0).mul(255).round().byte().numpy())
    assert frames.top_codes.shape == frames.top_probs.shape == (steps, 5)
    assert (np.diff(frames.top_probs, axis=1) <= 0).all() and (frames.top_probs.sum(1) <= 1 + 1e-5).all()


def test_greedy_frames_draw_the_most_likely_code_each_step(explorer):
    frames = explorer.sample_frames(label=1, temperature=0, seed=0)
    assert np.array_equal(frames.indices[-1].reshape(-1), frames.top_codes[:, 0])
    assert np.allclose(frames.drawn_probs, frames.top_probs[:, 0])  # what the step-by-step player marks as drawn


def test_each_step_records_the_probability_of_the_code_it_drew(explorer):
    frames = explorer.sample_frames(label=4, temperature=1.0, seed=3)
    drawn = torch.as_tensor(frames.indices[-1])[None]  # (1, h, w)
    with torch.no_grad():
        probs = explorer.priors["learned"].priors[None](drawn, torch.tensor([4])).softmax(1)[0]  # (K, h, w)
    expected = probs.gather(0, drawn).reshape(-1).numpy()
    assert frames.drawn_probs.shape == (H * W,) and np.allclose(frames.drawn_probs, expected)
    assert (frames.drawn_probs <= frames.top_probs[:, 0] + 1e-6).all()


def test_tiles_come_in_the_order_asked_and_refuse_a_code_that_does_not_exist(explorer):
    tiles = explorer.tiles([5, 0, 5])
    assert tiles.shape[0] == 3 and tiles.dtype == np.uint8 and np.array_equal(tiles[0], tiles[2])
    assert np.array_equal(tiles[1], explorer.code(0).tile)
    with pytest.raises(InputError, match="does not exist"):
        explorer.tiles([K])


def test_a_checkpoint_without_a_learned_prior(copy):
    (copy / ckpt.PRIOR).unlink()
    explorer = Explorer(copy)
    assert set(explorer.priors) == {"uniform", "unigram"} and set(explorer.heldout_bits) == {"uniform", "unigram"}
    assert not explorer.conditional
    samples = explorer.sample("unigram", 4, label=3, seed=0)  # the class is ignored, not an error
    assert samples.indices.shape == (4, H, W)
    with pytest.raises(InputError, match="no learned prior"):
        explorer.sample("learned", 4)
    with pytest.raises(InputError, match="no learned prior"):
        explorer.sample_frames()


# --- pictures from outside -----------------------------------------------------------------


def test_reconstruct_picture_reads_dark_on_light_and_light_on_dark_alike(explorer):
    picture = np.zeros((40, 40, 3), dtype=np.uint8)
    picture[8:32, 17:23] = 255  # a white "1" on black
    light = explorer.reconstruct_picture(picture)
    dark = explorer.reconstruct_picture(255 - picture)
    assert light.image.shape == light.reconstruction.shape == (SIZE, SIZE, 1) and light.indices.shape == (H, W)
    assert np.array_equal(light.image, dark.image) and np.array_equal(light.indices, dark.indices)
    assert light.image[0, 0, 0] == 0 and light.image.max() > 200  # light strokes on black, as the model learned
    assert math.isfinite(light.psnr_db)


# --- loading and caching ------------------------------------------------------------------


def test_open_explorer_reloads_only_when_a_watched_file_changes(copy):
    first = open_explorer(copy)
    assert open_explorer(copy) is first and open_explorer(str(copy / ".." / "copy")) is first
    metrics = copy / ckpt.METRICS
    metrics.write_text('{"note": "evaluated"}')
    second = open_explorer(copy)  # a new file
    assert second is not first and second.metrics == {"note": "evaluated"}
    assert open_explorer(copy) is second
    stat = metrics.stat()
    os.utime(metrics, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    third = open_explorer(copy)  # the same file, touched
    assert third is not second and open_explorer(copy) is third


def test_a_folder_without_an_analysis_is_refused_with_the_command_that_makes_it(copy, monkeypatch):
    (copy / ANALYSIS).unlink()
    before = snapshot(copy)
    monkeypatch.setattr(ckpt, "load_checkpoint", lambda folder: pytest.fail("loaded a folder it then refuses"))
    for load in (Explorer, open_explorer):
        with pytest.raises(CheckpointError, match=re.escape(f"`python -m vqvae analyse {copy.parent.name}/copy`")):
            load(copy)
    assert snapshot(copy) == before  # nothing analysed or written inside the request
    monkeypatch.undo()

    analyse_checkpoint(copy, with_umap=False)  # the command the message names
    assert open_explorer(copy).analysis.usage.shape == (K,)


def test_heldout_bits_come_from_metrics_json_only_while_the_files_it_measured_are_unchanged(copy, explorer):
    metrics = evaluate_checkpoint(copy)  # the same held-out codes, measured by `evaluate`
    assert Explorer(copy).heldout_bits == pytest.approx(explorer.heldout_bits, rel=1e-5)
    metrics["prior"]["learned_bits_per_latent"] = 1.25  # as if evaluated: read, not recomputed
    ckpt.atomic_write_json(copy / ckpt.METRICS, metrics)
    assert Explorer(copy).heldout_bits["learned"] == 1.25
    for name in (ckpt.WEIGHTS, ckpt.CODES, ckpt.PRIOR):  # newer than metrics.json, as in a fresh clone
        stat = (copy / ckpt.METRICS).stat()
        os.utime(copy / name, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert Explorer(copy).heldout_bits["learned"] == 1.25
    tensors, metadata = ckpt.read_tensors(copy / ckpt.PRIOR)
    ckpt.write_tensors(copy / ckpt.PRIOR, tensors, metadata | {"step": "41"})  # a prior trained since
    assert Explorer(copy).heldout_bits == pytest.approx(explorer.heldout_bits)


def test_compare_draws_what_each_prior_draws_alone(explorer):
    drawn = explorer.compare(5, label=1, temperature=1.0, seed=3)
    assert set(drawn) == set(explorer.priors)
    for name, samples in drawn.items():
        alone = explorer.sample(name, 5, label=1, temperature=1.0, seed=3)
        assert np.array_equal(samples.indices, alone.indices)
        assert np.array_equal(samples.images, alone.images)
        assert samples.bits_per_latent == pytest.approx(alone.bits_per_latent, rel=1e-5)
