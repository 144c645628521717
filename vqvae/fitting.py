"""Images brought to the model's size and channels: what every data source, loaded whole or read from a
cache a few rows at a time (image_cache.py), goes through on its way to the model."""

from __future__ import annotations

import torch


def fit_images(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """images (N, C, H, W) in [0, 1] -> (N, channels, image_size, image_size): grey averaged from colour,
    colour repeated from grey, an alpha channel dropped, resized with antialiasing."""
    if channels == 1 and images.shape[1] != 1:
        images = images[:, :3].mean(1, keepdim=True)  # (N, 3, H, W) -> (N, 1, H, W) grey
    elif channels == 3 and images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    elif channels == 3:
        images = images[:, :3]  # drop an alpha channel
    if images.shape[-2:] != (image_size, image_size):
        images = torch.nn.functional.interpolate(images, size=(image_size, image_size), mode="bilinear", antialias=True)
    return images.clamp(0, 1).contiguous()
