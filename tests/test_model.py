import dataclasses

import pytest
import torch

from vqvae.config import ModelConfig, QuantizerConfig, VQVAEConfig
from vqvae.model import VQVAE


def small(image_size, channels, downsample):
    return VQVAEConfig(
        model=ModelConfig(
            in_channels=channels,
            image_size=image_size,
            downsample=downsample,
            hidden_channels=8,
            residual_channels=4,
            num_residual_blocks=1,
        ),
        quantizer=QuantizerConfig(num_embeddings=16, embedding_dim=4),
    )


@pytest.mark.parametrize(
    "image_size,channels,downsample,grid",
    [(28, 1, 4, 7), (28, 1, 2, 14), (32, 3, 2, 16), (32, 3, 4, 8), (32, 3, 8, 4)],
)
def test_shapes(image_size, channels, downsample, grid):
    model = VQVAE(small(image_size, channels, downsample))
    x = torch.rand(2, channels, image_size, image_size)
    out = model(x)
    assert out.x_hat.shape == x.shape
    assert out.vq.indices.shape == (2, grid, grid)
    assert model.encode(x).shape == (2, grid, grid)
    assert model.latent_shape == (grid, grid)
    assert model.decode_indices(torch.zeros(3, grid, grid, dtype=torch.int64)).shape == (
        3,
        channels,
        image_size,
        image_size,
    )


def test_decode_indices_equals_the_decoder_of_z_q():
    model = VQVAE(small(28, 1, 4))
    model.train()
    model(torch.rand(8, 1, 28, 28))  # initialise the codebook from data
    model.eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        out = model(x)
        assert torch.equal(model.encode(x), out.vq.indices)
        assert torch.allclose(model.decode_indices(out.vq.indices), model.decoder(out.vq.z_q), atol=1e-6)


def test_encode_never_changes_the_codebook():
    model = VQVAE(small(28, 1, 4)).train()
    model(torch.rand(8, 1, 28, 28))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.encode(torch.rand(8, 1, 28, 28))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "changes",
    [{"image_size": 28, "downsample": 8}, {"in_channels": 2}, {"downsample": 3}, {"hidden_channels": 0}],
)
def test_bad_model_settings_are_refused(changes):
    with pytest.raises(ValueError):
        dataclasses.replace(ModelConfig(), **changes)


@pytest.mark.parametrize(
    "changes",
    [{"num_embeddings": 0}, {"decay": 1.5}, {"commitment_cost": float("nan")}, {"update": "magic"}, {"init": "x"}],
)
def test_bad_quantizer_settings_are_refused(changes):
    with pytest.raises(ValueError):
        dataclasses.replace(QuantizerConfig(), **changes)
