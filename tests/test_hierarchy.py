"""VQ-VAE-2 (Razavi et al. 2019): the hierarchy of code grids, its training, its checkpoint folder and its
priors per level, on the tiny two-level preset (8x8 digits: a 2x2 top grid over a 4x4 bottom grid)."""

import dataclasses
import json
import math
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vqvae import checkpoint as ckpt
from vqvae.__main__ import main
from vqvae.analysis import analyse_checkpoint, load_level_analysis
from vqvae.ancestral import LevelDraw, condition_map, level_log_probs, sample_levels
from vqvae.config import TrainConfig, VQVAE2Config, preset, vqvae2_config_from_dict
from vqvae.errors import CheckpointError, TrainingError
from vqvae.evaluate import evaluate_checkpoint
from vqvae.evaluate_levels import load_level_priors
from vqvae.hierarchy import VQVAE2
from vqvae.prior_training import train_prior
from vqvae.train import train_vqvae

SMALL_PRIOR = {"hidden_channels": 16, "embedding_dim": 16, "num_layers": 3}


def tiny_config(**changes) -> VQVAE2Config:
    return dataclasses.replace(preset("digits-tiny-2level").vqvae, **changes)


def prior_training(steps: int) -> TrainConfig:
    return TrainConfig(data="digits", steps=steps, batch_size=64, learning_rate=3e-3, log_every=10, save_every=20)


@pytest.fixture(scope="module")
def hierarchy_folder(tmp_path_factory):
    tiny = preset("digits-tiny-2level")
    folder = tmp_path_factory.mktemp("vqvae2") / "run"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=150), folder)
    return folder


@pytest.fixture(scope="module")
def priors_folder(hierarchy_folder, tmp_path_factory):
    folder = tmp_path_factory.mktemp("priors") / "run"
    shutil.copytree(hierarchy_folder, folder)
    for level in ("top", "bottom"):
        train_prior(folder, prior_training(60), level=level, settings=SMALL_PRIOR)
    return folder


def copy(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "copy")
    return tmp_path / "copy"


# --- the model (Algorithm 1)


def test_each_level_halves_the_grid_of_the_one_below_and_has_a_codebook_of_its_own():
    config = tiny_config(levels=2)
    assert config.latent_shapes == {"top": (2, 2), "bottom": (4, 4)}
    three = VQVAE2Config(dataclasses.replace(config.model, image_size=16), config.quantizer, levels=3)
    assert three.latent_shapes == {"top": (2, 2), "middle": (4, 4), "bottom": (8, 8)}
    model = VQVAE2(three)
    assert len(model.quantizers) == 3 and len({id(q.embedding) for q in model.quantizers}) == 3
    out = model(torch.rand(5, 1, 16, 16))
    assert out.x_hat.shape == (5, 1, 16, 16)
    assert [tuple(level.indices.shape) for level in out.levels] == [(5, 2, 2), (5, 4, 4), (5, 8, 8)]


def test_a_grid_too_small_to_halve_for_every_level_is_refused():
    assert tiny_config(levels=3).latent_shapes["top"] == (1, 1)
    with pytest.raises(ValueError, match="must be a multiple of 8"):
        tiny_config(levels=4)  # a 4x4 bottom grid cannot be halved three times
    with pytest.raises(ValueError, match="levels must be one of"):
        tiny_config(levels=1)


def test_encode_gives_the_codes_forward_quantised_to_and_decoding_them_gives_forwards_image():
    model = VQVAE2(tiny_config())
    x = torch.rand(16, 1, 8, 8)
    model(x)  # initialises each codebook from its first batch
    model.eval()
    with torch.no_grad():
        out, grids = model(x), model.encode(x)
        assert all(torch.equal(grid, level.indices) for grid, level in zip(grids, out.levels))
        assert torch.allclose(model.decode_indices(grids), out.x_hat, atol=1e-6)


def test_the_bottom_codes_depend_on_the_top_codes_and_the_image_on_both():
    """e_bottom = Q_bottom(h_bottom, D_top(e_top)): the bottom is quantised with the top's decoded features, and
    the decoder reads both levels."""
    model = VQVAE2(tiny_config())
    x = torch.rand(16, 1, 8, 8)
    model(x)
    model.eval()
    with torch.no_grad():
        top, bottom = model.encode(x)
        other_top = (top + 1) % model.num_embeddings
        assert not torch.allclose(model.decode_indices([other_top, bottom]), model.decode_indices([top, bottom]))
        other_bottom = (bottom + 1) % model.num_embeddings
        assert not torch.allclose(model.decode_indices([top, other_bottom]), model.decode_indices([top, bottom]))
        features = model._features(x)  # the bottom's z_e: its own features beside the top's decoded codes

        def bottom_z_e(top_codes):
            return model._z_e(1, features[1], model._above(1, model.quantizers[0].embed(top_codes), None))

        assert not torch.allclose(bottom_z_e(other_top), bottom_z_e(top))


def test_the_straight_through_gradient_reaches_the_top_encoder_through_the_bottom_level():
    model = VQVAE2(tiny_config())
    x = torch.rand(8, 1, 8, 8)
    out = model(x)
    (out.x_hat - x).pow(2).mean().backward()
    assert model.halvings[0].net[0].weight.grad.abs().sum() > 0  # E_top
    assert model.to_codes[0].weight.grad.abs().sum() > 0


def test_a_grid_of_the_wrong_shape_or_codes_is_refused_by_level():
    model = VQVAE2(tiny_config())
    top, bottom = torch.zeros(2, 2, 2, dtype=torch.int64), torch.zeros(2, 4, 4, dtype=torch.int64)
    with pytest.raises(ValueError, match="the bottom level's grid must be int64 of shape"):
        model.decode_indices([top, torch.zeros(2, 2, 2, dtype=torch.int64)])
    with pytest.raises(ValueError, match="the top level's codes must lie in"):
        model.decode_indices([top + 99, bottom])
    with pytest.raises(ValueError, match="one grid per level"):
        model.decode_indices([bottom])


# --- training and the checkpoint folder


def test_training_logs_every_levels_usage_and_the_folder_names_its_family(hierarchy_folder):
    history = json.loads((hierarchy_folder / ckpt.HISTORY).read_text())
    for level in ("top", "bottom"):
        for metric in ("perplexity", "codes_used", "codes_used_fraction", "commitment_loss"):
            assert f"{level}_{metric}" in history[-1]
    assert history[-1]["reconstruction_mse"] < history[0]["reconstruction_mse"]
    raw = json.loads((hierarchy_folder / ckpt.CONFIG).read_text())
    assert raw["family"] == "vqvae2" and raw["vqvae2"]["levels"] == 2
    loaded = ckpt.load_checkpoint(hierarchy_folder)
    assert isinstance(loaded.model, VQVAE2) and loaded.config == vqvae2_config_from_dict(raw["vqvae2"])
    assert loaded.step == 150


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    tiny = preset("digits-tiny-2level")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=40), straight)
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=40), resumed, should_stop=lambda: True)
    train_vqvae(tiny.vqvae, dataclasses.replace(tiny.train, steps=40), resumed, resume=True)
    ours, theirs = ckpt.read_tensors(resumed / ckpt.WEIGHTS)[0], ckpt.read_tensors(straight / ckpt.WEIGHTS)[0]
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert json.loads((resumed / ckpt.HISTORY).read_text()) != []


def test_a_level_codebook_of_the_wrong_shape_is_named(hierarchy_folder, tmp_path):
    folder = copy(hierarchy_folder, tmp_path)
    tensors, metadata = ckpt.read_tensors(folder / ckpt.WEIGHTS)
    tensors["quantizers.1.embedding"] = torch.zeros(7, tensors["quantizers.1.embedding"].shape[1])
    ckpt.write_tensors(folder / ckpt.WEIGHTS, tensors, metadata)
    with pytest.raises(CheckpointError, match="a bottom codebook of shape \\(7, 8\\)"):
        ckpt.load_checkpoint(folder)


def test_each_level_has_a_fingerprint_of_the_codebooks_it_depends_on(hierarchy_folder):
    loaded = ckpt.load_checkpoint(hierarchy_folder)
    top, bottom = (q.embedding for q in loaded.model.quantizers)
    assert ckpt.folder_fingerprint(hierarchy_folder, "top") == ckpt.codebook_fingerprint(top)
    assert ckpt.folder_fingerprint(hierarchy_folder, "bottom") == ckpt.codebook_fingerprint(top, bottom)
    assert ckpt.folder_fingerprint(hierarchy_folder) == ckpt.model_fingerprint(loaded.model)


# --- the priors (Algorithm 2)


def test_each_level_gets_its_own_prior_the_bottom_one_hearing_the_top_codes(priors_folder):
    top = ckpt.load_prior(priors_folder, "top")
    bottom = ckpt.load_prior(priors_folder, "bottom")
    assert top.latent_shape == (2, 2) and top.config.condition_channels == 0
    assert bottom.latent_shape == (4, 4) and bottom.config.condition_channels == 8  # D of the top level
    assert bottom.config.condition_layers > 0 and top.config.num_classes == bottom.config.num_classes == 10
    codes = ckpt.load_level_codes(priors_folder, ckpt.load_config(priors_folder).vqvae)
    assert codes["top"].train.shape[1:] == (2, 2) and codes["bottom"].train.shape[1:] == (4, 4)
    for level in ("top", "bottom"):
        history = json.loads((priors_folder / f"prior_{level}_history.json").read_text())
        assert history[-1]["bits_per_latent"] < history[0]["bits_per_latent"]


def test_the_bottom_prior_is_conditioned_on_the_top_codes(priors_folder):
    model = ckpt.load_checkpoint(priors_folder).model
    bottom = ckpt.load_prior(priors_folder, "bottom")
    top_codes = torch.randint(0, model.num_embeddings, (4, 2, 2))
    bottom_codes = torch.randint(0, model.num_embeddings, (4, 4, 4))
    labels = torch.tensor([1, 2, 3, 4])
    with torch.no_grad():
        heard = bottom.log_prob(bottom_codes, labels, condition_map(model, [top_codes], "bottom"))
        other = bottom.log_prob(bottom_codes, labels, condition_map(model, [(top_codes + 1) % 32], "bottom"))
    assert not torch.allclose(heard, other)


def test_a_hierarchy_trains_one_prior_per_named_level(hierarchy_folder, tmp_path):
    folder = copy(hierarchy_folder, tmp_path)
    with pytest.raises(TrainingError, match="choose the level to train \\(top, bottom\\)"):
        train_prior(folder, prior_training(5))
    with pytest.raises(TrainingError, match="choose the level"):
        train_prior(folder, prior_training(5), level="middle")
    assert not (folder / "prior_top.safetensors").exists() and "prior_top" not in ckpt.read_config(folder)


def test_a_prior_for_the_wrong_level_or_another_models_codebook_is_refused_by_name(priors_folder, tmp_path):
    folder = copy(priors_folder, tmp_path)
    shutil.copy(folder / "prior_top.safetensors", folder / "prior_bottom.safetensors")
    with pytest.raises(CheckpointError, match="is the prior of the top level, not of the bottom level"):
        ckpt.load_prior(folder, "bottom")
    other = copy(priors_folder, tmp_path / "other")
    tensors, metadata = ckpt.read_tensors(other / ckpt.WEIGHTS)
    tensors["quantizers.0.embedding"] = tensors["quantizers.0.embedding"] + 1.0
    ckpt.write_tensors(other / ckpt.WEIGHTS, tensors, metadata)
    for level in ("top", "bottom"):  # the bottom prior hears the top codebook's vectors
        with pytest.raises(CheckpointError, match="made from another codebook"):
            ckpt.load_prior(other, level)


def test_a_top_grid_of_the_wrong_shape_given_to_the_bottom_prior_is_a_clear_error(priors_folder):
    model = ckpt.load_checkpoint(priors_folder).model
    with pytest.raises(ValueError, match="the top grid given to the bottom level's prior must be int64 of shape"):
        condition_map(model, [torch.zeros(2, 4, 4, dtype=torch.int64)], "bottom")
    with pytest.raises(ValueError, match="conditioned on the grids above it \\(top\\)"):
        condition_map(model, [], "bottom")


def test_ancestral_sampling_draws_the_top_then_the_bottom_each_with_its_seed(priors_folder):
    model = ckpt.load_checkpoint(priors_folder).model
    priors = load_level_priors(priors_folder, model)
    labels = torch.arange(6) % 10
    draws = {"top": LevelDraw(seed=1), "bottom": LevelDraw(seed=2)}
    first = sample_levels(model, priors, 6, labels, draws)
    again = sample_levels(model, priors, 6, labels, draws)
    assert all(torch.equal(a, b) for a, b in zip(first.grids, again.grids))
    other_bottom = sample_levels(model, priors, 6, labels, {"top": LevelDraw(seed=1), "bottom": LevelDraw(seed=3)})
    assert torch.equal(other_bottom.grids[0], first.grids[0]) and not torch.equal(other_bottom.grids[1], first.grids[1])
    scored = level_log_probs(model, priors, first.grids, labels)
    for level, log_p in zip(("top", "bottom"), first.log_probs):
        assert torch.allclose(scored[level], log_p, atol=1e-4)
    kept = sample_levels(model, priors, 6, labels, {"bottom": LevelDraw(seed=4)}, given={"top": first.grids[0]})
    assert torch.equal(kept.grids[0], first.grids[0])


def test_evaluate_reports_every_level_under_every_prior(priors_folder, tmp_path):
    folder = copy(priors_folder, tmp_path)
    metrics = evaluate_checkpoint(folder)
    for level in ("top", "bottom"):
        assert 0 < metrics[f"{level}_codes_used"] <= 32 and metrics[f"{level}_perplexity"] > 1
        prior = metrics["prior"]
        assert prior[f"{level}_uniform_bits_per_latent"] == pytest.approx(5.0)
        assert prior[f"{level}_unigram_bits_per_latent"] < 5.0
        assert prior[f"{level}_learned_bits_per_latent"] < prior[f"{level}_uniform_bits_per_latent"]
    assert metrics["prior"]["psnr_db_top_alone"] > 0 and metrics["psnr_db"] > 10
    assert set(metrics["measured"]) >= {"prior_top.safetensors", "prior_bottom.safetensors"}


# --- the command line


def vqvae(capsys, *args) -> tuple[int, str, str]:
    """`python -m vqvae ARGS` through its entry point, in this process (no second import of torch): status,
    stdout and stderr."""
    capsys.readouterr()
    status = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_command_line_trains_a_prior_per_level_samples_the_hierarchy_and_evaluates_it(tmp_path, capsys):
    folder, picture = tmp_path / "run", tmp_path / "samples.png"
    assert vqvae(capsys, "train", "--preset", "digits-tiny-2level", "--out", folder, "--steps", 60, "--no-eval")[0] == 0
    small = ("--steps", 20, "--layers", 2, "--hidden", 16)
    status, _, err = vqvae(capsys, "train-prior", folder, "--level", "middle", *small)
    assert status == 2 and "choose the level to train (top, bottom)" in err
    assert not (folder / "codes.safetensors").exists()
    status, _, err = vqvae(capsys, "train-prior", folder, *small)
    assert status == 0, err
    assert (folder / "prior_top.safetensors").exists() and (folder / "prior_bottom.safetensors").exists()
    status, _, err = vqvae(capsys, "train-prior", folder, "--level", "top", *small)
    assert status == 2 and "already has a learned prior of its top level" in err
    status, _, err = vqvae(capsys, "sample", folder, "--out", picture, "--n", 10, "--temperature", "1,0.5")
    assert status == 0, err
    width, height = Image.open(picture).size
    assert width > 10 * 8 * 3 and height < 2 * 8 * 3  # one row: a column per class, 8x8 digits enlarged 3 times
    status, _, err = vqvae(capsys, "sample", folder, "--out", picture, "--temperature", "1,1,1")
    assert status == 2 and "one for each of the 2 levels" in err
    status, out, _ = vqvae(capsys, "evaluate", folder, "--json")
    measured = json.loads(out)
    assert measured["prior"]["learned_levels"] == ["top", "bottom"] and "learned_sample_accuracy" in measured["prior"]


# --- what the app shows, per level


def test_the_analysis_has_every_levels_usage_projection_and_tiles(priors_folder, tmp_path):
    folder = copy(priors_folder, tmp_path)
    analyses = analyse_checkpoint(folder, with_umap=False)
    assert list(analyses) == ["top", "bottom"]
    top, bottom = analyses["top"], analyses["bottom"]
    assert top.indices.shape[1:] == (2, 2) and bottom.indices.shape[1:] == (4, 4)
    assert int(top.usage.sum()) == len(top.images) * 4 and int(bottom.usage.sum()) == len(bottom.images) * 16
    assert top.tiles.shape[-1] == 8 and bottom.tiles.shape[-1] == 6  # three cells of each level's grid
    assert top.images is bottom.images or torch.equal(top.images, bottom.images)
    model = ckpt.load_checkpoint(folder).model
    loaded = load_level_analysis(folder, model)
    for level in ("top", "bottom"):
        assert torch.equal(loaded[level].indices, analyses[level].indices)
        assert torch.equal(loaded[level].tiles, analyses[level].tiles)
    with torch.no_grad():
        assert torch.equal(model.encode(top.images.float() / 255)[0], top.indices)
    tensors, metadata = ckpt.read_tensors(folder / ckpt.WEIGHTS)
    tensors["quantizers.1.embedding"] = tensors["quantizers.1.embedding"] * 2
    ckpt.write_tensors(folder / ckpt.WEIGHTS, tensors, metadata)
    with pytest.raises(CheckpointError, match="made from another codebook"):
        load_level_analysis(folder, ckpt.load_checkpoint(folder).model)


@pytest.fixture(scope="module")
def explored(priors_folder, tmp_path_factory):
    from vqvae.app.explorer import Explorer

    folder = tmp_path_factory.mktemp("explored") / "run"
    shutil.copytree(priors_folder, folder)
    analyse_checkpoint(folder, with_umap=False)
    return Explorer(folder)


def test_the_explorer_sees_a_hierarchy_level_by_level(explored):
    from vqvae.errors import InputError

    assert explored.levels == ["top", "bottom"] and explored.level == "top"
    bottom = explored.at("bottom")
    assert explored.latent_shape == (2, 2) and bottom.latent_shape == (4, 4)
    assert bottom.analysis.indices.shape[1:] == (4, 4) and explored.at("top") is explored
    with pytest.raises(InputError, match="no level 'middle'; the levels are top, bottom"):
        explored.at("middle")
    seen_top, seen_bottom = explored.reconstruct_heldout(3), bottom.reconstruct_heldout(3)
    assert np.array_equal(seen_top.reconstruction, seen_bottom.reconstruction)
    assert np.array_equal(seen_top.indices, seen_top.levels["top"]) and seen_top.indices.shape == (2, 2)
    assert np.array_equal(seen_bottom.indices, seen_top.levels["bottom"])


def test_a_cell_of_either_grid_is_edited_with_the_other_level_kept(explored):
    from vqvae.errors import InputError

    bottom = explored.at("bottom")
    before = bottom.reconstruct_heldout(0)
    edited = bottom.set_code(before.indices, 1, 2, (int(before.indices[1, 2]) + 1) % 32)
    after = bottom.decode(edited, before.image, before.levels)
    with torch.no_grad():
        grids = [torch.as_tensor(before.levels["top"])[None], torch.as_tensor(edited)[None]]
        expected = explored.model.decode_indices(grids).clamp(0, 1)[0].permute(1, 2, 0).mul(255).round().byte()
    assert np.array_equal(after.reconstruction, expected.numpy())
    assert np.array_equal(after.levels["top"], before.levels["top"]) and np.array_equal(after.indices, edited)
    top_edit = explored.set_code(before.levels["top"], 0, 0, 5)
    assert np.array_equal(explored.decode(top_edit, None, before.levels).levels["bottom"], before.levels["bottom"])
    with pytest.raises(InputError, match="decodes every level's grid together"):
        bottom.decode(edited)
    with pytest.raises(InputError, match=r"a top code grid must be \(2, 2\)"):
        bottom.decode(edited, None, {"top": np.zeros((4, 4))})


def test_the_explorer_samples_the_hierarchy_under_each_prior(explored):
    from vqvae.errors import InputError

    drawn = explored.compare(4, label=2, seed=1)
    assert list(drawn) == ["uniform", "unigram", "learned"]
    for samples in drawn.values():
        assert samples.images.shape == (4, 8, 8, 1) and samples.indices.shape == (4, 2, 2)
        assert math.isfinite(samples.bits_per_latent) and samples.bits_per_latent > 0
    again = explored.at("bottom").sample("learned", 4, label=2, seed=1)
    assert np.array_equal(again.images, drawn["learned"].images) and again.indices.shape == (4, 4, 4)
    bits = explored.heldout_bits
    assert bits["uniform"] == pytest.approx(5.0) and bits["learned"] < bits["uniform"]
    with pytest.raises(InputError, match="no cheap prior"):
        explored.sample("cheap", 2)


def test_a_sample_is_drawn_step_by_step_the_top_grid_first_then_the_bottom(explored):
    frames = explored.sample_frames(label=3, temperature=1.0, seed=2)
    top, bottom = frames.stages
    assert (top.level, top.start, top.grid.shape) == ("top", 0, (2, 2))
    assert (bottom.level, bottom.start, bottom.grid.shape) == ("bottom", 4, (4, 4))
    assert frames.images.shape == (4 + 16 + 1, 8, 8, 1) and frames.top_codes.shape == (20, 5)
    assert (frames.indices[:5] == -1).all() and np.array_equal(frames.indices[-1], bottom.grid)
    assert (frames.indices[4 + 7].reshape(-1) >= 0).sum() == 7  # seven bottom codes drawn after the four top ones
    drawn = explored.sample("learned", 1, label=3, temperature=1.0, seed=2)
    assert np.array_equal(frames.images[-1], drawn.images[0]) and np.array_equal(top.grid, drawn.indices[0])
    assert (frames.drawn_probs <= frames.top_probs[:, 0] + 1e-6).all()


def test_the_levels_study_decodes_each_level_alone_swapped_and_resampled(priors_folder):
    from vqvae.app.levels import study_levels
    from vqvae.data import load_split

    model = ckpt.load_checkpoint(priors_folder).model
    priors = load_level_priors(priors_folder, model)
    test = load_split("digits", 8, 1).test
    x, donor, label = test.images[:1], test.images[1:2], test.labels[:1]
    study = study_levels(model, priors, x, donor, label, resamples=3, seed=5)
    assert study.image.shape == study.both.shape == study.top_alone.shape == study.swapped.shape == (8, 8, 1)
    assert study.resampled.shape == (3, 8, 8, 1)
    assert [f.level for f in study.levels] == ["top", "bottom"]
    assert [f.grid.shape for f in study.levels] == [(2, 2), (4, 4)]
    assert all(f.bits_per_latent is not None and 0 < f.bits_per_latent for f in study.levels)
    with torch.no_grad():
        grids = model.encode(x)
        swapped = model.decode_indices([model.encode(donor)[0], grids[1]]).clamp(0, 1)
        both = model.decode_indices(grids).clamp(0, 1)
    assert study.psnr_db["both"] == pytest.approx(10 * math.log10(1 / float((both - x).pow(2).mean())))
    assert np.array_equal(study.swapped[..., 0], (swapped[0, 0] * 255).round().byte().numpy())
    again = study_levels(model, priors, x, donor, label, resamples=3, seed=5)
    assert np.array_equal(again.resampled, study.resampled)
