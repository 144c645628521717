import math

import pytest
import torch

from vqvae.metrics import perplexity
from vqvae.quantizer import VectorQuantizer, VectorQuantizerEMA, kmeans

from .helpers import quantizer_config

BOTH = [VectorQuantizer, VectorQuantizerEMA]


def park_far_away(q, code):
    """Move one code far from every z_e, so the search never picks it."""
    with torch.no_grad():
        q.embedding[code] = 100.0
        if isinstance(q, VectorQuantizerEMA):
            q.embed_sum[code] = 100.0 * q.cluster_size[code]


@pytest.mark.parametrize("cls", BOTH)
def test_output_shape_equals_input_shape(cls):
    q = cls(quantizer_config())
    z_e = torch.randn(3, 4, 5, 6)
    out = q(z_e)
    assert out.z_q.shape == z_e.shape
    assert out.indices.shape == (3, 5, 6)
    assert out.counts.shape == (16,) and int(out.counts.sum()) == 3 * 5 * 6


@pytest.mark.parametrize("cls", BOTH)
def test_indices_equal_brute_force_argmin(cls):
    q = cls(quantizer_config()).eval()
    z_e = torch.randn(2, 4, 7, 7) * 0.1
    flat = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    brute = torch.stack([((q.codebook - v) ** 2).sum(1).argmin() for v in flat]).view(2, 7, 7)
    assert torch.equal(q(z_e).indices, brute)
    assert torch.equal(q.indices(z_e), brute)
    assert torch.allclose(q(z_e).z_q, q.embed(brute))


def test_cosine_search_uses_normalised_vectors():
    q = VectorQuantizer(quantizer_config(cosine=True)).eval()
    z_e = torch.randn(2, 4, 3, 3)
    flat = torch.nn.functional.normalize(z_e.permute(0, 2, 3, 1).reshape(-1, 4), dim=1)
    codes = torch.nn.functional.normalize(q.embedding, dim=1)
    brute = (flat @ codes.t()).argmax(1).view(2, 3, 3)  # max cosine = min distance of unit vectors
    assert torch.equal(q(z_e).indices, brute)


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("training", [True, False])
def test_straight_through_gradient_equals_upstream_gradient(cls, training):
    q = cls(quantizer_config()).train(training)
    z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
    upstream = torch.randn(2, 4, 3, 3)
    (q(z_e).z_q * upstream).sum().backward()
    assert torch.allclose(z_e.grad, upstream)


def test_beta_weights_the_commitment_term_not_the_codebook_term():
    def grads(beta):
        torch.manual_seed(1)
        q = VectorQuantizer(quantizer_config(commitment_cost=beta))
        z_e = torch.randn(2, 4, 3, 3, requires_grad=True)
        out = q(z_e)
        assert torch.allclose(out.loss, out.codebook_loss + beta * out.commitment_loss)
        out.loss.backward()
        return z_e.grad.clone(), q.embedding.grad.clone()

    z_grad_small, e_grad_small = grads(0.25)
    z_grad_big, e_grad_big = grads(1.0)
    assert torch.allclose(e_grad_small, e_grad_big)  # the codebook term does not see beta
    assert torch.allclose(z_grad_big, 4 * z_grad_small)  # the encoder's pull scales with beta
    assert z_grad_small.abs().sum() > 0


def test_ema_has_no_codebook_loss_and_no_codebook_gradient():
    q = VectorQuantizerEMA(quantizer_config())
    out = q(torch.randn(2, 4, 3, 3, requires_grad=True))
    assert float(out.codebook_loss) == 0.0
    assert not any(p.requires_grad for p in q.parameters())


def test_ema_buffers_move_only_in_training_mode_and_follow_the_formula():
    config = quantizer_config(decay=0.9, epsilon=1e-5)
    q = VectorQuantizerEMA(config)
    z_e = torch.randn(2, 4, 3, 3)
    q.eval()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(z_e)
    assert all(torch.equal(before[k], v) for k, v in q.state_dict().items())

    q.train()
    out = q(z_e)
    z = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    onehot = torch.nn.functional.one_hot(out.indices.flatten(), 16).float()  # (N, K)
    size = 0.9 * before["cluster_size"] + 0.1 * onehot.sum(0)
    total = size.sum()
    smoothed = (size + 1e-5) / (total + 16 * 1e-5) * total
    embed_sum = 0.9 * before["embed_sum"] + 0.1 * onehot.t() @ z
    assert torch.allclose(q.cluster_size, size)
    assert torch.allclose(q.embed_sum, embed_sum, atol=1e-6)
    assert torch.allclose(q.embedding, embed_sum / smoothed[:, None], atol=1e-6)


@pytest.mark.parametrize("cls", BOTH)
def test_dead_code_restart_revives_an_unused_code(cls):
    q = cls(quantizer_config(dead_code_steps=3)).train()
    park_far_away(q, 5)
    z_e = torch.randn(4, 4, 3, 3)
    z = z_e.permute(0, 2, 3, 1).reshape(-1, 4)
    for _ in range(2):
        q(z_e)
    assert torch.all(q.embedding[5] > 50)  # not yet: unused for 2 steps only
    q(z_e)
    revived = q.embedding[5]
    assert torch.isclose((z - revived).abs().sum(1).min(), torch.tensor(0.0), atol=1e-6)  # one of the z_e
    assert int(q.steps_since_used[5]) == 0


def test_restarts_are_off_by_default():
    q = VectorQuantizerEMA(quantizer_config()).train()
    park_far_away(q, 5)
    for _ in range(20):
        q(torch.randn(2, 4, 3, 3))
    assert torch.all(q.embedding[5] > 50)


@pytest.mark.parametrize("init", ["samples", "kmeans"])
def test_codebook_initialised_from_the_first_batch(init):
    q = VectorQuantizerEMA(quantizer_config(init=init, num_embeddings=8)).train()
    assert not bool(q.initialised)
    z_e = torch.cat([torch.randn(1, 4, 4, 4) + 10, torch.randn(1, 4, 4, 4) - 10])
    out = q(z_e)
    assert bool(q.initialised)
    assert float(q.embedding.abs().mean()) > 5  # codes sit among the data, not near 0
    assert int((out.counts > 0).sum()) >= 2


def test_kmeans_finds_separated_clusters():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = torch.cat([c + 0.1 * torch.randn(50, 2) for c in centres])
    found = kmeans(z, 3, iters=20, generator=torch.Generator().manual_seed(3))
    assert torch.cdist(centres, found).min(1).values.max() < 0.5


def test_perplexity_equals_a_hand_count():
    assert math.isclose(float(perplexity(torch.tensor([5, 5, 5, 5]))), 4.0, rel_tol=1e-6)
    assert math.isclose(float(perplexity(torch.tensor([7, 0, 0, 7]))), 2.0, rel_tol=1e-6)
    assert math.isclose(float(perplexity(torch.tensor([9, 0, 0, 0]))), 1.0, rel_tol=1e-6)
    p = [0.75, 0.25]
    assert math.isclose(
        float(perplexity(torch.tensor([3, 1]))), math.exp(-sum(x * math.log(x) for x in p)), rel_tol=1e-6
    )


def test_batch_perplexity_is_reported():
    q = VectorQuantizer(quantizer_config()).eval()
    out = q(torch.randn(2, 4, 5, 5))
    assert torch.isclose(out.perplexity, perplexity(out.counts))
