"""log p(z | label, s) of whole code grids under the gated PixelCNN (network.py), for inference.

The same arithmetic as `GatedPixelCNN.forward`, on the matrices each layer exports
(`GatedLayer.matrices`) as the sampler uses them (sampler.py): each convolution a matrix
product over channels-last windows of every position at once. On small grids a convolution
call spends more on reordering its tensors than on arithmetic; here the products run near the
machine's matmul peak, and every layer's gate lands in one matrix so that the skip paths are a
single product. The vertical stack skips the last row: it reaches the horizontal stack one row
down, and there is no row below it. With gradients on, `log_prob` keeps the convolutions
(training); with them off, it comes here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .gate import gate_into

if TYPE_CHECKING:
    from .network import GatedPixelCNN


def log_prob(
    model: GatedPixelCNN, indices: torch.Tensor, labels: torch.Tensor | None, condition: torch.Tensor | None
) -> torch.Tensor:
    """indices (n, h, w) int64 -> (n,) log p(z | label, s) in nats; labels and condition checked, and the
    condition as the gated layers hear it (`GatedPixelCNN.hear`)."""
    n, h, w = indices.shape
    layers = model.layers
    r, c = layers[0].reach, model.config.hidden_channels
    positions = n * h * w
    x = model.embed(indices)  # (n, h, w, E)
    rows = max(h - 1, 1)  # the vertical stack's rows: 0..h-2, the ones heard below them (one, unheard, if h = 1)
    v = x[:, :rows]
    across = F.pad(x, (0, 0, r + 1, 0))[:, :, : w + r]  # the horizontal input shifted right (mask A), r zeros left
    gates = x.new_ones(positions, len(layers), c + 1)  # every layer's gate, then a 1 that carries the biases
    matrices = [layer.matrices(labels, condition) for layer in layers]
    for k, m in enumerate(matrices):
        # vertical stack: rows i-r..i, columns j-r..j+r
        padded = F.pad(v, (0, 0, r, r, r, 0))  # (n, rows + r, w + 2r, C_in)
        windows = padded.unfold(1, r + 1, 1).unfold(2, 2 * r + 1, 1)  # (n, rows, w, C_in, r + 1, k)
        windows = windows.permute(0, 1, 2, 4, 5, 3).reshape(n * rows * w, -1)  # (n*rows*w, (r+1) * k * C_in)
        features = (windows @ m.vertical.T).view(n, rows, w, 2 * c)
        features += m.vertical_bias[:, :rows]  # (n|1, rows|1, w|1, 2C)
        above = features[:, : h - 1].reshape(-1, 2 * c)  # rows 0..h-2, heard by rows 1..h-1
        link = torch.addmm(m.link_bias, above, m.link)
        if k + 1 < len(matrices):
            v = torch.empty(n, rows, w, c, dtype=x.dtype, device=x.device)
            gate_into(features.view(-1, 2 * c), v.view(-1, c))
        # horizontal stack: columns j-r..j of its own row, plus the vertical features of the row above
        windows = across.unfold(2, r + 1, 1).transpose(3, 4).reshape(positions, -1)  # (n*h*w, (r+1) * C_in)
        heard = (windows @ m.horizontal).view(n, h, w, 2 * c)
        heard += m.horizontal_bias  # (n|1, h|1, w|1, 2C)
        heard[:, 1:] += link.view(n, h - 1, w, 2 * c)  # row 0 hears nothing from above, bias and all
        gate_into(heard.view(positions, 2 * c), gates[:, k, :c])
        if k + 1 < len(matrices):  # the residual path: the next layer's horizontal input
            residual = (gates[:, k] @ m.residual).view(n, h, w, c)
            out = residual if k == 0 else across[:, :, r:] + residual  # the first layer has no residual path
            across = F.pad(out, (0, 0, r, 0))  # (n, h, w + r, C)
    skip = torch.cat([m.skip for m in matrices])  # (L*(C+1), C)
    total = gates.view(positions, -1) @ skip  # (n*h*w, C): the sum of every layer's skip path
    if model.attention is not None:
        total = model.attention(total.view(n, h * w, c)).reshape(positions, c)  # raster order, as forward's
    head = model.head_matrices()
    hidden_features = torch.addmm(head.hidden_bias, total.relu_(), head.hidden).relu_()
    logits = torch.addmm(head.out_bias, hidden_features, head.out)  # (n*h*w, K)
    chosen = logits.log_softmax(dim=1).gather(1, indices.reshape(positions, 1))  # (n*h*w, 1)
    return chosen.view(n, h * w).sum(dim=1)
