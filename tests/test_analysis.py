"""analysis.safetensors on a tiny checkpoint: usage, codes, exemplars, tiles, projections, and load checks."""

import dataclasses
import shutil

import pytest
import torch

from vqvae import checkpoint as ckpt
from vqvae.analysis import (
    ANALYSIS,
    EXEMPLARS,
    NEAREST,
    analyse_checkpoint,
    background_code,
    load_analysis,
    nearest_codes,
    pca_2d,
    save_analysis,
    tile_size,
    umap_2d,
    usage_counts,
)
from vqvae.config import preset
from vqvae.data import load_split
from vqvae.errors import CheckpointError
from vqvae.levels import LevelView
from vqvae.model import VQVAE
from vqvae.train import train_vqvae

K = 32  # digits-tiny: K = 32 codes on a 4x4 grid of 8x8 digits
HELD_OUT = 179


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(folder, the Analysis analyse_checkpoint returned) for a digits-tiny VQ-VAE."""
    tiny = preset("digits-tiny")
    folder = tmp_path_factory.mktemp("analysis") / "run"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=60), folder)
    return folder, analyse_checkpoint(folder, with_umap=False)[None]


@pytest.fixture(scope="module")
def folder(trained):
    return trained[0]


@pytest.fixture(scope="module")
def analysis(trained):
    return trained[1]


@pytest.fixture(scope="module")
def model(folder):
    return ckpt.load_checkpoint(folder).model


@pytest.fixture(scope="module")
def heldout():
    return load_split("digits", 8, 1).test


@pytest.fixture
def copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


def window(image: torch.Tensor, row: int, col: int, cell: int) -> torch.Tensor:
    """The 3x3 block of latent cells centred on (row, col) of image (C, H, W); outside the image, the
    nearest edge pixel."""
    c, height, width = image.shape
    out = torch.zeros(c, 3 * cell, 3 * cell, dtype=image.dtype)
    top, left = (row - 1) * cell, (col - 1) * cell
    for y in range(3 * cell):
        for x in range(3 * cell):
            out[:, y, x] = image[:, min(max(top + y, 0), height - 1), min(max(left + x, 0), width - 1)]
    return out


# --- usage -------------------------------------------------------------------------------


def test_usage_counts_every_heldout_latent_once(analysis):
    assert analysis.indices.shape == (HELD_OUT, 4, 4)
    assert int(analysis.usage.sum()) == HELD_OUT * 4 * 4
    assert torch.equal(analysis.usage, torch.bincount(analysis.indices.reshape(-1), minlength=K))
    assert analysis.usage_by_class.shape == (10, K)
    assert torch.equal(analysis.usage_by_class.sum(0), analysis.usage)
    for c in range(10):
        grids = analysis.indices[analysis.labels == c]
        assert torch.equal(analysis.usage_by_class[c], torch.bincount(grids.reshape(-1), minlength=K))


def test_usage_counts_on_hand_made_grids():
    indices = torch.tensor([[[0, 1]], [[1, 1]], [[3, 3]]])  # (3, 1, 2)
    labels = torch.tensor([0, 1, -1])  # the third grid is unlabelled: counted overall, in no class
    usage, by_class = usage_counts(indices, labels, k=4, classes=2)
    assert usage.tolist() == [1, 3, 0, 2]
    assert by_class.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0]]


def test_stored_heldout_split_and_codes_are_the_encoders(analysis, model, heldout):
    assert torch.equal(analysis.labels, heldout.labels)
    assert torch.equal(analysis.images, heldout.images.mul(255).round().to(torch.uint8))
    with torch.no_grad():
        assert torch.equal(analysis.indices, model.encode(heldout.images))


# --- the codebook ------------------------------------------------------------------------


def test_nearest_codes_match_a_brute_force_search():
    codebook = torch.randn(20, 5)
    nearest = nearest_codes(codebook, count=6)
    distance = torch.cdist(codebook, codebook)
    assert nearest.shape == (20, 6)
    for k in range(20):
        assert k not in nearest[k].tolist()
        d = distance[k, nearest[k]]
        assert torch.all(d[1:] >= d[:-1])
        others = [j for j in range(20) if j != k]
        expected = sorted(others, key=lambda j: float(distance[k, j]))[:6]
        assert nearest[k].tolist() == expected


def test_nearest_codes_of_a_tiny_codebook_and_of_the_model(analysis, model):
    assert nearest_codes(torch.tensor([[0.0], [1.0], [3.0]])).tolist() == [[1, 2], [0, 2], [1, 0]]
    assert analysis.nearest.shape == (K, NEAREST)
    assert torch.equal(analysis.nearest, nearest_codes(model.quantizer.codebook.detach().float()))


def test_pca_puts_the_main_direction_on_the_first_axis():
    generator = torch.Generator().manual_seed(0)
    t = torch.linspace(-5, 5, 40)
    direction = torch.nn.functional.normalize(torch.randn(8, generator=generator), dim=0)
    codebook = 3.0 + t[:, None] * direction + 0.05 * torch.randn(40, 8, generator=generator)
    xy = pca_2d(codebook)
    assert xy.shape == (40, 2) and xy.dtype == torch.float32
    assert torch.allclose(xy.mean(0), torch.zeros(2), atol=1e-4)  # centred
    assert abs(float(torch.corrcoef(torch.stack([xy[:, 0], t]))[0, 1])) > 0.999
    assert float(xy[:, 0].var()) > 100 * float(xy[:, 1].var())


def test_pca_of_a_planar_codebook_keeps_every_distance():
    generator = torch.Generator().manual_seed(1)
    basis, _ = torch.linalg.qr(torch.randn(6, 2, generator=generator))  # two orthonormal directions in R^6
    plane = torch.randn(15, 2, generator=generator) * torch.tensor([4.0, 1.0])
    xy = pca_2d(plane @ basis.T + 2.0)
    assert torch.allclose(torch.cdist(xy, xy), torch.cdist(plane, plane), atol=1e-4)


def test_background_code_is_the_commonest_corner_code():
    grids = torch.full((3, 4, 4), 5)  # 5 fills the middles (the most frequent code) but no corner
    grids[0, 0, 0] = grids[0, 0, -1] = grids[0, -1, 0] = grids[0, -1, -1] = 7
    grids[1, 0, 0] = grids[1, -1, -1] = 7
    grids[1, 0, -1] = grids[1, -1, 0] = 2
    grids[2, 0, -1] = grids[2, -1, 0] = grids[2, -1, -1] = 2
    grids[2, 0, 0] = 9
    assert background_code(grids) == 7  # 7 at six corners, 2 at five, 9 at one
    grids[1, 0, 0] = 2
    assert background_code(grids) == 2  # now 2 at six, 7 at five
    assert background_code(torch.full((2, 1, 1), 3)) == 3  # a 1x1 grid: its one cell is every corner


# --- exemplars and tiles -----------------------------------------------------------------


def test_exemplars_are_heldout_patches_of_their_code_nearest_first(analysis, model, heldout):
    cell = 8 // 4
    assert tile_size(LevelView(model)) == 3 * cell
    with torch.no_grad():
        z_e = model.encoder(heldout.images)  # (M, D, h, w)
    distance = torch.cdist(z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1]), model.quantizer.codebook.detach())
    distance = distance.reshape(HELD_OUT, 4, 4, K)
    for k in range(K):
        count = int(analysis.exemplar_count[k])
        assert count == min(EXEMPLARS, int(analysis.usage[k]))
        assert not analysis.exemplars[k, count:].any()  # black where there is no exemplar
        positions = (analysis.indices == k).nonzero().tolist()
        patches = [window(analysis.images[i], r, c, cell) for i, r, c in positions]
        for exemplar in analysis.exemplars[k, :count]:
            assert any(torch.equal(exemplar, patch) for patch in patches)
        if count:
            d = torch.tensor([float(distance[i, r, c, k]) for i, r, c in positions])
            nearest = [patch for patch, di in zip(patches, d) if di <= d.min() + 1e-5]
            assert any(torch.equal(analysis.exemplars[k, 0], patch) for patch in nearest)


def test_tiles_are_the_mean_decoded_window_around_each_use(analysis, model):
    assert analysis.tiles.shape == (K, 1, 6, 6)
    with torch.no_grad():
        decoded = model.decode_indices(analysis.indices).clamp(0, 1)
    sums, counts = torch.zeros(K, 1, 6, 6), torch.zeros(K)
    for i, grid in enumerate(analysis.indices):
        for r in range(4):
            for c in range(4):
                k = int(grid[r, c])
                sums[k] += window(decoded[i], r, c, 2)
                counts[k] += 1
    used = counts > 0
    expected = (sums[used] / counts[used, None, None, None]).mul(255).round()
    assert (analysis.tiles[used].float() - expected).abs().max() <= 1


# --- the file ----------------------------------------------------------------------------


def test_save_then_load_gives_the_same_analysis(folder, analysis, model, tmp_path):
    save_analysis(tmp_path, analysis)
    for source in (folder, tmp_path):  # the file analyse_checkpoint wrote, and one saved again
        loaded = load_analysis(source, model)
        assert loaded.projections.keys() == analysis.projections.keys() == {"pca"}
        assert torch.equal(loaded.projections["pca"], analysis.projections["pca"])
        for field in dataclasses.fields(analysis):
            if field.name != "projections":
                mine, theirs = getattr(loaded, field.name), getattr(analysis, field.name)
                if isinstance(theirs, torch.Tensor):
                    assert mine.dtype == theirs.dtype and torch.equal(mine, theirs), field.name
                else:
                    assert mine == theirs, field.name


@pytest.mark.parametrize(
    "change,problem",
    [
        ({"quantizer": {"num_embeddings": 16}}, "usage"),  # another K
        ({"model": {"image_size": 16, "downsample": 4}}, "images"),  # the same 4x4 grid, bigger images
        ({"model": {"downsample": 4}}, "indices"),  # a 2x2 grid
        ({"model": {"in_channels": 3}}, "images"),
    ],
)
def test_an_analysis_of_another_model_is_refused(folder, change, problem):
    config = preset("digits-tiny").vqvae
    config = dataclasses.replace(
        config,
        model=dataclasses.replace(config.model, **change.get("model", {})),
        quantizer=dataclasses.replace(config.quantizer, **change.get("quantizer", {})),
    )
    with pytest.raises(CheckpointError, match=rf"does not match this VQ-VAE \({problem} is not"):
        load_analysis(folder, VQVAE(config))


def test_a_truncated_or_garbage_analysis_is_refused(copy, model):
    data = (copy / ANALYSIS).read_bytes()
    (copy / ANALYSIS).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_analysis(copy, model)
    (copy / ANALYSIS).write_bytes(b"<html>not tensors</html>")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        load_analysis(copy, model)
    (copy / ANALYSIS).unlink()
    with pytest.raises(CheckpointError, match="analysis.safetensors is missing"):
        load_analysis(copy, model)


def test_an_analysis_missing_a_tensor_or_holding_bad_codes_is_refused(copy, analysis, model):
    tensors, _ = ckpt.read_tensors(copy / ANALYSIS)
    ckpt.write_tensors(copy / ANALYSIS, {k: v for k, v in tensors.items() if k != "nearest"})
    with pytest.raises(CheckpointError, match="lacks 'nearest'"):
        load_analysis(copy, model)
    bad = dataclasses.replace(analysis, indices=analysis.indices.clone())
    bad.indices[0, 0, 0] = K
    save_analysis(copy, bad)
    with pytest.raises(CheckpointError, match=r"codes outside \[0, 32\)"):
        load_analysis(copy, model)
    save_analysis(copy, dataclasses.replace(analysis, background_code=K))
    with pytest.raises(CheckpointError, match=r"codes outside \[0, 32\)"):
        load_analysis(copy, model)
    save_analysis(copy, dataclasses.replace(analysis, projections={"umap": analysis.projections["pca"]}))
    with pytest.raises(CheckpointError, match="no valid codebook projection"):
        load_analysis(copy, model)


def test_analyse_checkpoint_needs_to_know_its_data(copy):
    config = ckpt.read_config(copy)
    config.pop("train")
    ckpt.atomic_write_json(copy / ckpt.CONFIG, config)
    with pytest.raises(CheckpointError, match="does not say which data"):
        analyse_checkpoint(copy, with_umap=False)


# --- UMAP: the one slow test (numba compiles on first use) -------------------------------


def test_umap_separates_two_clusters_and_skips_tiny_codebooks():
    pytest.importorskip("umap")
    generator = torch.Generator().manual_seed(0)
    centres = torch.zeros(2, 8)
    centres[1, 0] = 20.0
    codebook = centres.repeat_interleave(16, 0) + 0.3 * torch.randn(32, 8, generator=generator)
    xy = umap_2d(codebook)
    assert xy is not None and xy.shape == (32, 2) and xy.dtype == torch.float32
    assert bool(torch.isfinite(xy).all())
    a, b = xy[:16], xy[16:]
    spread = max(float(torch.cdist(a, a).max()), float(torch.cdist(b, b).max()))
    assert float(torch.cdist(a, b).min()) > spread  # every cross-cluster gap beats every within-cluster one
    assert umap_2d(codebook[:7]) is None  # fewer than 8 codes: not worth a 2-D embedding
