import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from vqvae.config import PriorConfig, prior_config_from_dict
from vqvae.prior import GatedPixelCNN, UniformPrior, UnigramPrior, sample_categorical
from vqvae.prior.sampler import RasterSampler

K, H, W = 8, 4, 5


def prior_config(**changes) -> PriorConfig:
    """K=8 codes on a 4x5 grid, a few channels; 5 layers of 3x3 stacks see the whole grid."""
    config = PriorConfig(
        num_embeddings=K, latent_height=H, latent_width=W, embedding_dim=6, hidden_channels=8, num_layers=5
    )
    return dataclasses.replace(config, **changes)


def pixelcnn(**changes) -> GatedPixelCNN:
    return GatedPixelCNN(prior_config(**changes)).eval()


def codes(n: int = 3, shape: tuple[int, int] = (H, W)) -> torch.Tensor:
    return torch.randint(0, K, (n, *shape))


def unigram() -> UnigramPrior:
    return UnigramPrior.fit(torch.tensor([0, 0, 0, 1, 1, 2]).repeat(10).view(3, H, W), K)


def all_priors() -> list:
    return [pixelcnn(), UniformPrior(K, (H, W)), unigram()]


def raster_after(t: int) -> torch.Tensor:
    """(H, W) bool: the positions after t in raster order."""
    return torch.arange(H * W).view(H, W) > t


def greedy_decode(model: GatedPixelCNN, n: int, labels=None, given=None) -> torch.Tensor:
    """Argmax at each position in raster order, from full forward passes."""
    h, w = model.latent_shape
    z = torch.zeros(n, h, w, dtype=torch.int64) if given is None else given.clamp(min=0)
    with torch.no_grad():
        for i in range(h):
            for j in range(w):
                best = model(z, labels)[:, :, i, j].argmax(dim=1)
                z[:, i, j] = best if given is None else torch.where(given[:, i, j] >= 0, given[:, i, j], best)
    return z


# --- config


def test_config_round_trips_and_validates():
    config = prior_config(num_classes=10, dropout=0.1)
    assert prior_config_from_dict(dataclasses.asdict(config)) == config
    assert config.latent_shape == (H, W)
    for bad in [dict(num_embeddings=1), dict(latent_height=0), dict(kernel_size=4), dict(kernel_size=1)]:
        with pytest.raises(ValueError):
            prior_config(**bad)
    with pytest.raises(ValueError):
        prior_config(dropout=1.0)
    with pytest.raises(ValueError):
        prior_config(num_classes=-1)


# --- the gated PixelCNN: shapes, causality, no blind spot


def test_forward_and_log_prob_shapes():
    model = pixelcnn()
    z = codes()
    logits = model(z)
    assert logits.shape == (3, K, H, W)
    expected = torch.log_softmax(logits, dim=1).gather(1, z[:, None]).sum(dim=(1, 2, 3))
    assert model.log_prob(z).shape == (3,)
    assert torch.allclose(model.log_prob(z), expected, atol=1e-5)
    assert model.num_embeddings == K and model.latent_shape == (H, W)


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_changing_code_t_leaves_positions_up_to_t_unchanged(kernel_size):
    model = pixelcnn(kernel_size=kernel_size)
    z = codes()
    logits = model(z)
    for t in range(H * W):  # every position: row starts and row ends included
        i, j = divmod(t, W)
        changed = z.clone()
        changed[:, i, j] = (z[:, i, j] + 1) % K
        new_logits = model(changed)
        seen = ~raster_after(t)
        assert torch.allclose(new_logits[:, :, seen], logits[:, :, seen], rtol=0, atol=1e-6), t
        log_p, new_log_p = F.log_softmax(logits, dim=1), F.log_softmax(new_logits, dim=1)
        assert torch.allclose(new_log_p[:, :, seen], log_p[:, :, seen], rtol=0, atol=1e-6), t
        if t + 1 < H * W:
            ni, nj = divmod(t + 1, W)
            assert not torch.allclose(new_logits[:, :, ni, nj], logits[:, :, ni, nj]), t


def embedding_gradient(model: GatedPixelCNN, z: torch.Tensor, i: int, j: int) -> torch.Tensor:
    """(H, W): how much each code's embedding moves a random projection of the logits at (i, j)."""
    captured = {}
    hook = model.embedding.register_forward_hook(lambda module, args, out: captured.setdefault("x", out))
    logits = model(z)
    hook.remove()
    (grad,) = torch.autograd.grad((logits[:, :, i, j] * torch.randn_like(logits[:, :, i, j])).sum(), captured["x"])
    return grad.abs().sum(dim=(0, 3))  # (B, H, W, E) -> (H, W)


def test_no_blind_spot_every_earlier_position_reaches_t():
    model = pixelcnn()
    z = codes(2)
    for t in range(H * W):
        i, j = divmod(t, W)
        influence = embedding_gradient(model, z, i, j)
        before = torch.arange(H * W).view(H, W) < t
        assert bool((influence[before] > 0).all()), f"blind spot at {(i, j)}: {influence}"
        assert bool((influence[~before] == 0).all()), f"position {(i, j)} sees itself or later codes"


def test_no_blind_spot_by_changing_each_earlier_code():
    model = pixelcnn()
    z = codes(1)
    for i, j in [(H - 1, W - 1), (H - 1, 0), (1, 0)]:  # the last position; the upper-right of a row start
        logits = model(z)[:, :, i, j]
        for s in range(i * W + j):
            si, sj = divmod(s, W)
            changed = z.clone()
            changed[:, si, sj] = (z[:, si, sj] + 1) % K
            assert not torch.allclose(model(changed)[:, :, i, j], logits), f"{(si, sj)} does not reach {(i, j)}"


# --- class conditioning


def test_labels_change_the_logits():
    model = pixelcnn(num_classes=3)
    z = codes(2)
    zero, one = torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64)
    assert not torch.allclose(model(z, zero), model(z, one))
    # the first code sees nothing but the label, so the label must reach it too
    assert not torch.allclose(model(z, zero)[:, :, 0, 0], model(z, one)[:, :, 0, 0])
    assert model.log_prob(z, zero).shape == (2,)


def test_labels_must_match_the_model():
    conditional, unconditional = pixelcnn(num_classes=3), pixelcnn()
    z = codes(2)
    with pytest.raises(ValueError, match="class-conditional"):
        conditional(z)
    with pytest.raises(ValueError, match="class-conditional"):
        conditional.sample(2)
    with pytest.raises(ValueError, match="unconditional"):
        unconditional(z, torch.zeros(2, dtype=torch.int64))
    for bad in [torch.tensor([0, 3]), torch.tensor([-1, 0]), torch.zeros(3, dtype=torch.int64), torch.zeros(2)]:
        with pytest.raises(ValueError):
            conditional(z, bad)


def test_conditional_greedy_sample_follows_its_label():
    model = pixelcnn(num_classes=3)
    labels = torch.tensor([0, 1, 2])
    assert torch.equal(model.sample(3, labels, temperature=0), greedy_decode(model, 3, labels))


# --- the simple priors


def test_uniform_log_prob_is_minus_hw_log_k():
    prior = UniformPrior(K, (H, W))
    assert torch.equal(prior.log_prob(codes(4)), torch.full((4,), -H * W * math.log(K)))
    assert prior.num_embeddings == K and prior.latent_shape == (H, W)


def test_unigram_log_prob_is_the_sum_of_smoothed_log_frequencies():
    train = codes(6)
    prior = UnigramPrior.fit(train, K, smoothing=1.0)
    counts = torch.bincount(train.flatten(), minlength=K).double()
    log_p = ((counts + 1) / (counts.sum() + K)).log()  # add-one smoothing
    z = codes(4)
    assert torch.allclose(prior.log_prob(z).double(), log_p[z].sum(dim=(1, 2)), atol=1e-4)
    assert prior.num_embeddings == K and prior.latent_shape == (H, W)
    assert bool(prior.log_probs.isfinite().all())  # unseen codes keep a little probability


def test_unigram_top_k_keeps_the_most_frequent_codes():
    z = unigram().sample(20, top_k=2, seed=0)
    assert set(z.unique().tolist()) == {0, 1}
    assert bool((unigram().sample(2, temperature=0) == 0).all())


def test_simple_priors_ignore_labels():
    labels = torch.tensor([5, 7])
    for prior in [UniformPrior(K, (H, W)), unigram()]:
        z = codes(2)
        assert torch.equal(prior.log_prob(z, labels), prior.log_prob(z))
        assert torch.equal(prior.sample(2, labels, seed=1), prior.sample(2, seed=1))


# --- sampling, shared by all three priors


@pytest.mark.parametrize("prior", all_priors(), ids=["pixelcnn", "uniform", "unigram"])
def test_sample_shape_range_and_seed(prior):
    z = prior.sample(4, seed=0)
    assert z.shape == (4, H, W) and z.dtype == torch.int64
    assert int(z.min()) >= 0 and int(z.max()) < K
    assert torch.equal(prior.sample(4, seed=0), z)
    assert not torch.equal(prior.sample(4, seed=1), z)
    assert prior.sample(0).shape == (0, H, W)


@pytest.mark.parametrize("prior", all_priors(), ids=["pixelcnn", "uniform", "unigram"])
def test_sampling_leaves_the_global_rng_alone(prior):
    state = torch.get_rng_state()
    prior.sample(3, seed=0)
    prior.sample(3)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("prior", all_priors(), ids=["pixelcnn", "uniform", "unigram"])
def test_given_codes_are_kept(prior):
    given = torch.full((3, H, W), -1, dtype=torch.int64)
    given[:, :2] = codes(3, (2, W))  # the top half known
    given[1, 3, 2] = 7
    z = prior.sample(3, given=given, seed=0)
    known = given >= 0
    assert torch.equal(z[known], given[known])
    assert int(z[~known].min()) >= 0 and int(z[~known].max()) < K


@pytest.mark.parametrize("prior", all_priors(), ids=["pixelcnn", "uniform", "unigram"])
def test_top_k_one_equals_temperature_zero(prior):
    assert torch.equal(prior.sample(3, top_k=1, seed=5), prior.sample(3, temperature=0))


def test_sampling_keeps_the_training_flag():
    model = pixelcnn(dropout=0.5).train()
    model.sample(1)
    assert model.training
    model.eval().sample(1)
    assert not model.training


@pytest.mark.parametrize(
    "changes",
    [dict(), dict(kernel_size=5, num_layers=2), dict(latent_height=1), dict(latent_width=1), dict(num_layers=1)],
    ids=["3x3", "5x5", "one-row", "one-column", "one-layer"],
)
def test_temperature_zero_is_the_greedy_decode(changes):
    model = pixelcnn(**changes)
    assert torch.equal(model.sample(3, temperature=0), greedy_decode(model, 3))


def test_temperature_zero_completes_given_codes_greedily():
    model = pixelcnn()
    given = torch.full((3, H, W), -1, dtype=torch.int64)
    given[:, 0] = codes(3, (1, W))[:, 0]
    given[:, 2, 1:3] = 4
    assert torch.equal(model.sample(3, temperature=0, given=given), greedy_decode(model, 3, given=given))


def test_sample_categorical():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]]).repeat(2000, 1)
    generator = torch.Generator().manual_seed(0)
    assert bool((sample_categorical(logits, temperature=0) == 1).all())
    assert bool((sample_categorical(logits, temperature=1e-3, generator=generator) == 1).all())
    assert set(sample_categorical(logits, top_k=2, generator=generator).tolist()) == {1, 3}
    frequencies = torch.bincount(sample_categorical(logits, generator=generator), minlength=4) / 2000
    assert torch.allclose(frequencies, logits[0].softmax(0), atol=0.04)
    masked = torch.tensor([[-math.inf, 0.0, -math.inf, 0.0]]).repeat(500, 1)
    assert set(sample_categorical(masked, generator=generator).tolist()) == {1, 3}


# --- bad input


@pytest.mark.parametrize("prior", all_priors(), ids=["pixelcnn", "uniform", "unigram"])
def test_bad_input_raises_value_error(prior):
    bad_codes = [
        codes(2, (H, W + 1)),
        codes(2, (H + 1, W)),
        codes(2)[0],
        codes(2).float(),
        torch.full((2, H, W), K),
        torch.full((2, H, W), -1),
    ]
    for z in bad_codes:
        with pytest.raises(ValueError):
            prior.log_prob(z)
    bad_sampling = [
        dict(temperature=-1.0),
        dict(temperature=math.nan),
        dict(top_k=0),
        dict(given=torch.full((2, H, W), -2)),
        dict(given=torch.full((2, H, W), K)),
        dict(given=torch.full((3, H, W), -1)),
    ]
    for kwargs in bad_sampling:
        with pytest.raises(ValueError):
            prior.sample(2, **kwargs)


def test_unigram_fit_needs_positive_smoothing():
    with pytest.raises(ValueError):
        UnigramPrior.fit(codes(2), K, smoothing=0.0)


# --- learnability


def test_a_few_steps_lower_the_nll():
    torch.manual_seed(0)
    model = pixelcnn(num_classes=2).train()
    z, labels = codes(16), torch.randint(0, 2, (16,))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = -model.log_prob(z, labels).mean().item()
    for _ in range(30):
        loss = -model.log_prob(z, labels).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        after = -model.log_prob(z, labels).mean().item()
    assert after < 0.8 * before, (before, after)


FAST_PATH_CASES = [
    dict(),
    dict(num_classes=3),
    dict(condition_channels=2),
    dict(num_classes=3, condition_channels=2, latent_height=1),
    dict(condition_channels=2, condition_layers=2),
    dict(kernel_size=5),
    dict(latent_height=1),
    dict(latent_width=1),
    dict(num_layers=1),
]
FAST_PATH_IDS = [
    "3x3",
    "conditional",
    "map",
    "label-and-map-one-row",
    "map-through-a-stack",
    "5x5",
    "one-row",
    "one-column",
    "one-layer",
]


def inputs(model: GatedPixelCNN, n: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Labels and a conditioning map at the grid's size for the model, or None for what it does not take."""
    labels = torch.tensor([0, 2, 1, 1][:n]) if model.config.num_classes else None
    channels = model.config.condition_channels
    condition = torch.randn(n, channels, *model.latent_shape) if channels else None
    return labels, condition


@pytest.mark.parametrize("changes", FAST_PATH_CASES, ids=FAST_PATH_IDS)
def test_the_sampler_gives_forwards_logits_at_every_position(changes):
    """Fed a known grid code by code, the cached sampler's logits at each position are forward's."""
    model = pixelcnn(**changes).eval()
    height, width = model.latent_shape
    z = codes(3, (height, width))
    labels, condition = inputs(model, 3)
    with torch.no_grad():
        full = model(z, labels, condition)  # (3, K, h, w)
        heard = None if condition is None else model.hear(condition)
        sampler = RasterSampler(model, torch.zeros_like(z), labels, heard)  # every position still a placeholder
        for i in range(height):
            sampler.start_row(i)
            for j in range(width):
                assert torch.allclose(sampler.logits(i, j), full[:, :, i, j], atol=1e-5), (i, j)
                sampler.place(i, j, z[:, i, j])


@pytest.mark.parametrize("changes", FAST_PATH_CASES, ids=FAST_PATH_IDS)
def test_log_prob_without_gradients_equals_the_convolutions(changes):
    """With gradients off, log_prob takes scoring.py's matrix products; it must give forward's numbers, and
    with gradients on it must still train (the convolutions, which backpropagate)."""
    model = pixelcnn(**changes).eval()
    for parameter in model.parameters():  # weights far from their small initial values, biases included
        torch.nn.init.normal_(parameter, std=0.5)
    z = codes(4, model.latent_shape)
    labels, condition = inputs(model, 4)
    by_convolutions = -F.cross_entropy(model(z, labels, condition), z, reduction="none").sum(dim=(1, 2))
    with torch.inference_mode():
        assert torch.allclose(model.log_prob(z, labels, condition), by_convolutions, rtol=1e-5, atol=1e-4)
    with torch.no_grad():
        assert torch.allclose(model.log_prob(z, labels, condition), by_convolutions, rtol=1e-5, atol=1e-4)
    with_gradients = model.log_prob(z, labels, condition)
    assert with_gradients.requires_grad and torch.allclose(with_gradients, by_convolutions)


def test_sample_scored_gives_the_log_prob_of_its_grids():
    model = pixelcnn(num_classes=3)
    labels = torch.tensor([0, 1, 2, 2])
    for temperature in (1.0, 0.5, 0.0):
        grids, log_p = model.sample_scored(4, labels, temperature=temperature, seed=3)
        assert torch.equal(grids, model.sample(4, labels, temperature=temperature, seed=3))
        with torch.no_grad():
            assert torch.allclose(log_p, model.log_prob(grids, labels), atol=1e-4)


# --- a conditioning map (VQ-VAE-2's bottom prior hears the top codes through one)


def test_a_conditioning_map_keeps_the_prior_causal():
    model = pixelcnn(condition_channels=2)
    z, condition = codes(2), torch.randn(2, 2, H, W)
    logits = model(z, condition=condition)
    for t in range(H * W):
        i, j = divmod(t, W)
        changed = z.clone()
        changed[:, i, j] = (z[:, i, j] + 1) % K
        seen = ~raster_after(t)
        assert torch.allclose(model(changed, condition=condition)[:, :, seen], logits[:, :, seen], rtol=0, atol=1e-6)


def test_the_map_changes_the_logits_everywhere_and_is_brought_to_the_grids_size():
    model = pixelcnn(condition_channels=2)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    z, small = codes(2), torch.randn(2, 2, 2, 3)  # a coarser level's map
    at_grid = F.interpolate(small, size=(H, W), mode="nearest")
    with torch.no_grad():
        logits = model(z, condition=small)
        assert torch.equal(logits, model(z, condition=at_grid))
        other = model(z, condition=at_grid + 1)
    assert bool(((logits - other).abs().amax(dim=1) > 1e-4).all())  # at every position, the first included


def test_a_conditioning_stack_lets_each_position_hear_the_map_around_it():
    """The map at the last position reaches, without a stack, only that position's logits; through two 3x3
    layers it reaches two rows and columns before it, so the first logits it changes (raster order) are
    those at (H-3, W-3)."""
    plain, stacked = pixelcnn(condition_channels=2), pixelcnn(condition_channels=2, condition_layers=2)
    z, condition = codes(2), torch.randn(2, 2, H, W)
    moved = condition.clone()
    moved[:, :, H - 1, W - 1] += 1.0
    with torch.no_grad():
        for model, first in ((plain, (H - 1) * W + W - 1), (stacked, (H - 3) * W + W - 3)):
            for parameter in model.parameters():
                torch.nn.init.normal_(parameter, std=0.5)
            changed = (model(z, condition=condition) - model(z, condition=moved)).abs().amax(dim=(0, 1)) > 1e-5
            assert not bool(changed.flatten()[:first].any()) and bool(changed.flatten()[first]), changed


def test_the_map_must_match_the_model():
    unconditioned, conditioned = pixelcnn(), pixelcnn(condition_channels=2)
    z = codes(2)
    with pytest.raises(ValueError, match="takes no conditioning map"):
        unconditioned(z, condition=torch.zeros(2, 2, H, W))
    with pytest.raises(ValueError, match="conditioned on a map"):
        conditioned(z)
    for bad in (torch.zeros(2, 3, H, W), torch.zeros(1, 2, H, W), torch.zeros(2, 2, H, W, dtype=torch.int64)):
        with pytest.raises(ValueError, match="condition must be float of shape"):
            conditioned.sample(2, condition=bad)


def test_a_map_conditioned_sample_is_reproducible_and_scored():
    model = pixelcnn(condition_channels=2)
    condition = torch.randn(3, 2, H, W)
    grids, log_p = model.sample_scored(3, seed=5, condition=condition)
    assert torch.equal(grids, model.sample(3, seed=5, condition=condition))
    with torch.no_grad():
        assert torch.allclose(log_p, model.log_prob(grids, condition=condition), atol=1e-4)


# --- self-attention (VQ-VAE-2's top prior attends to every earlier position)


def attending(**changes) -> GatedPixelCNN:
    """A prior with an attention block, its weights (the block's zero-initialised output included) random."""
    model = pixelcnn(attention_heads=2, **changes)
    for parameter in model.parameters():
        torch.nn.init.normal_(parameter, std=0.3)
    return model


def test_attention_keeps_the_prior_causal_and_reaches_back_further_than_the_stacks():
    model = attending(num_layers=1)  # one 3x3 layer alone sees only the row above and the code to the left
    z = codes(2)
    with torch.no_grad():
        logits = model(z)
        for t in range(H * W):
            i, j = divmod(t, W)
            changed = z.clone()
            changed[:, i, j] = (z[:, i, j] + 1) % K
            after = model(changed)
            seen = ~raster_after(t)
            assert torch.allclose(after[:, :, seen], logits[:, :, seen], rtol=0, atol=1e-6), t
        first = z.clone()
        first[:, 0, 0] = (z[:, 0, 0] + 1) % K
        assert not torch.allclose(
            model(first)[:, :, H - 1, W - 1], logits[:, :, H - 1, W - 1]
        )  # the far corner hears it


def test_the_fast_paths_compute_the_attention_block_as_forward_does():
    model = attending(num_classes=3)
    z, labels = codes(3), torch.tensor([0, 2, 1])
    with torch.no_grad():
        full = model(z, labels)
        by_convolutions = -F.cross_entropy(full, z, reduction="none").sum(dim=(1, 2))
        assert torch.allclose(model.log_prob(z, labels), by_convolutions, rtol=1e-5, atol=1e-4)
        sampler = RasterSampler(model, torch.zeros_like(z), labels)
        for i in range(H):
            sampler.start_row(i)
            for j in range(W):
                assert torch.allclose(sampler.logits(i, j), full[:, :, i, j], atol=1e-5), (i, j)
                sampler.place(i, j, z[:, i, j])
    grids, log_p = model.sample_scored(3, labels, seed=2)
    with torch.no_grad():
        assert torch.allclose(log_p, model.log_prob(grids, labels), atol=1e-4)


def test_attention_heads_must_divide_the_channels():
    with pytest.raises(ValueError, match="multiple of attention_heads"):
        prior_config(attention_heads=3)
