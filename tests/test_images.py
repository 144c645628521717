import numpy as np
import torch

from vqvae.images import grid, to_uint8


def test_to_uint8_clamps_and_rounds():
    x = torch.tensor([-0.5, 0.0, 0.5, 1.0, 2.0]).view(1, 1, 1, 5)
    assert to_uint8(x)[0, 0, :, 0].tolist() == [0, 0, 128, 255, 255]


def test_grid_places_each_tile():
    tiles = torch.stack([torch.full((1, 2, 3), v) for v in (0.0, 1.0, 0.0)])  # (3, 1, 2, 3)
    picture = np.asarray(grid(tiles, columns=2, padding=1, background=7))
    assert picture.shape == (1 + 2 * 3, 1 + 2 * 4)
    assert (picture[1:3, 1:4] == 0).all() and (picture[1:3, 5:8] == 255).all()
    assert (picture[4:6, 1:4] == 0).all() and (picture[4:6, 5:8] == 7).all()  # the empty slot stays background
    assert grid(torch.rand(2, 3, 4, 4), columns=2, scale=3).size == (3 * (2 + 2 * 6), 3 * (2 + 6))
