"""log p(z | label) of whole code grids under the gated PixelCNN (prior.py), for inference.

The same arithmetic as `GatedPixelCNN.forward`, written as the sampler writes it (sampler.py):
each convolution a matrix product over channels-last windows of every position at once. On
7x7 grids a convolution call spends more on reordering its tensors than on arithmetic; here
the products run near the machine's matmul peak, and every layer's gate lands in one matrix
so that the skip paths are a single product. The vertical stack skips the last row: it
reaches the horizontal stack one row down, and there is no row below it. With gradients on,
`log_prob` keeps the convolutions (training); with them off, it comes here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .sampler import gate_into, windows_last, with_label

if TYPE_CHECKING:
    from .prior import GatedPixelCNN


def log_prob(model: GatedPixelCNN, codes: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """codes (n, h, w) int64, checked by the caller -> (n,) log p(z | label) in nats."""
    n, h, w = codes.shape
    layers = model.layers
    r, c = layers[0].reach, model.config.hidden_channels
    positions = n * h * w
    x = F.embedding(codes, model.embedding.weight)  # (n, h, w, E)
    rows = max(h - 1, 1)  # the vertical stack's rows: 0..h-2, the ones heard below them (one, unheard, if h = 1)
    v = x[:, :rows]
    across = F.pad(x, (0, 0, r + 1, 0))[:, :, : w + r]  # the horizontal input shifted right (mask A), r zeros left
    gates = x.new_ones(positions, len(layers), c + 1)  # every layer's gate, then a 1 that carries the biases
    for k, layer in enumerate(layers):
        # vertical stack: rows i-r..i, columns j-r..j+r
        padded = F.pad(v, (0, 0, r, r, r, 0))  # (n, rows + r, w + 2r, C_in)
        windows = padded.unfold(1, r + 1, 1).unfold(2, 2 * r + 1, 1)  # (n, rows, w, C_in, r + 1, k)
        windows = windows.permute(0, 1, 2, 4, 5, 3).reshape(n * rows * w, -1)  # (n*rows*w, (r+1) * k * C_in)
        features = (windows @ windows_last(layer.vertical).T).view(n, rows * w, 2 * c)
        features += with_label(layer.vertical.bias, layer.label_vertical, labels)  # (n, rows*w, 2C)
        above = features.view(n, rows, w, 2 * c)[:, : h - 1].reshape(-1, 2 * c)  # rows 0..h-2, heard by rows 1..h-1
        link = torch.addmm(layer.vertical_to_horizontal.bias, above, windows_last(layer.vertical_to_horizontal).T)
        if k + 1 < len(layers):
            v = torch.empty(n, rows, w, c, dtype=x.dtype, device=x.device)
            gate_into(features.view(-1, 2 * c), v.view(-1, c))
        # horizontal stack: columns j-r..j of its own row, plus the vertical features of the row above
        windows = across.unfold(2, r + 1, 1).transpose(3, 4).reshape(positions, -1)  # (n*h*w, (r+1) * C_in)
        heard = (windows @ windows_last(layer.horizontal).T).view(n, h, w, 2 * c)
        heard += with_label(layer.horizontal.bias, layer.label_horizontal, labels)[:, :, None]  # (n, 1, 1, 2C)
        heard[:, 1:] += link.view(n, h - 1, w, 2 * c)  # row 0 hears nothing from above, bias and all
        gate_into(heard.view(positions, 2 * c), gates[:, k, :c])
        if k + 1 < len(layers):  # the residual path: the next layer's horizontal input
            residual = gates[:, k] @ torch.cat([windows_last(layer.out)[:c].T, layer.out.bias[None, :c]])
            residual = residual.view(n, h, w, c)
            out = residual if k == 0 else across[:, :, r:] + residual  # the first layer has no residual path
            across = F.pad(out, (0, 0, r, 0))  # (n, h, w + r, C)
    skip = torch.cat([torch.cat([windows_last(g.out)[c:].T, g.out.bias[None, c:]]) for g in layers])  # (L*(C+1), C)
    total = gates.view(positions, -1) @ skip  # (n*h*w, C): the sum of every layer's skip path
    _, hidden, _, out = model.head
    hidden_features = F.linear(total.relu_(), hidden.weight.flatten(1), hidden.bias).relu_()
    logits = F.linear(hidden_features, out.weight.flatten(1), out.bias)  # (n*h*w, K)
    chosen = logits.log_softmax(dim=1).gather(1, codes.reshape(positions, 1))  # (n*h*w, 1)
    return chosen.view(n, h * w).sum(dim=1)
