import math

import torch

from vqvae.metrics import mse, psnr_db, ssim


def test_psnr_of_a_known_error():
    assert math.isclose(psnr_db(0.01), 20.0)
    assert math.isclose(psnr_db(0.001), 30.0)
    assert psnr_db(0.0) == float("inf")


def test_mse_is_per_image():
    x = torch.zeros(2, 1, 4, 4)
    y = torch.stack([torch.zeros(1, 4, 4), torch.full((1, 4, 4), 0.5)])
    assert torch.allclose(mse(y, x), torch.tensor([0.0, 0.25]))


def test_ssim_is_one_for_identical_images_and_lower_for_noise():
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-5)
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert float(ssim(noisy, x).max()) < 0.9
    assert ssim(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)).shape == (2,)
