"""Raster-order sampling for the gated PixelCNN (prior.py), running each stack only where it must.

Drawing a grid takes h*w steps. Position (i, j) sees the rows above only through the
vertical stack's links into row i, and its own row only through columns < j of the
horizontal stack. So the vertical stack runs once per row, on the row just finished, the
horizontal stack once per position, on the position just reached, and every layer's
outputs are kept: the logits equal `GatedPixelCNN.forward`'s, and a step costs the same on
any grid size.

On one step's tiny tensors a convolution call costs ~100 us and every extra tensor op a
few us, so the convolutions become matrix products over channels-last windows, and each
layer's input is kept zero-padded so that every window is a plain slice:

    rows     r zero rows above the grid (the vertical stack sees rows i-r..i)
    columns  r+1 zero columns on the left (the first layer's input is shifted right), r on the right

with r = kernel_size // 2, the stacks' reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .prior import GatedLayer, GatedPixelCNN


@dataclass
class _LayerMatrices:
    """One gated layer's convolutions as matrices over channels-last windows, its biases folded in."""

    vertical: torch.Tensor  # (2C, (r+1) * k * C_in): windows of rows i-r..i, columns j-r..j+r
    vertical_bias: torch.Tensor  # (n, 1, 2C): the convolution's bias and the label's
    link: torch.Tensor  # (2C, 2C): the vertical features as the horizontal stack hears them
    link_bias: torch.Tensor  # (2C,)
    horizontal_bias: torch.Tensor  # (n, 1, 2C): the horizontal convolution's and the label's
    horizontal: torch.Tensor  # ((r+1) * C_in, 2C), transposed for addmm: windows of columns j-r..j
    residual: torch.Tensor  # (C, C), transposed
    residual_bias: torch.Tensor  # (C,)
    skip: torch.Tensor  # (C, C), transposed
    skip_bias: torch.Tensor  # (C,)


def _windows_last(conv: torch.nn.Conv2d) -> torch.Tensor:
    return conv.weight.permute(0, 2, 3, 1).flatten(1)  # (O, I, kh, kw) -> (O, kh * kw * I)


def _with_label(bias: torch.Tensor, embedding: torch.nn.Embedding | None, labels: torch.Tensor | None) -> torch.Tensor:
    """bias (2C,) plus the label's learned bias: (n, 1, 2C), or (1, 1, 2C) for an unconditional model."""
    total = bias if embedding is None else bias + embedding(labels)  # (2C,) or (n, 2C)
    return total.reshape(-1, 1, bias.shape[0])


def _matrices(layer: GatedLayer, labels: torch.Tensor | None) -> _LayerMatrices:
    c = layer.out.in_channels
    out = _windows_last(layer.out)  # (2C, C): the residual rows, then the skip rows
    return _LayerMatrices(
        vertical=_windows_last(layer.vertical),
        vertical_bias=_with_label(layer.vertical.bias, layer.label_vertical, labels),
        link=_windows_last(layer.vertical_to_horizontal),
        link_bias=layer.vertical_to_horizontal.bias,
        horizontal_bias=_with_label(layer.horizontal.bias, layer.label_horizontal, labels),
        horizontal=_windows_last(layer.horizontal).T.contiguous(),
        residual=out[:c].T.contiguous(),
        residual_bias=layer.out.bias[:c],
        skip=out[c:].T.contiguous(),
        skip_bias=layer.out.bias[c:],
    )


class RasterSampler:
    """The caches of one batch of grids being drawn. Call `start_row(i)` at each row, then
    `logits(i, j)` and `place(i, j, codes)` at each of its positions, in raster order."""

    def __init__(self, model: GatedPixelCNN, codes: torch.Tensor, labels: torch.Tensor | None):
        """codes: (n, h, w) int64, the placeholders of positions not drawn yet included."""
        layers = model.layers
        self.model, self.layers = model, layers
        self.reach = r = layers[0].reach
        self.left = r + 1
        n, height, width = codes.shape
        c, device = model.config.hidden_channels, codes.device
        self.n, self.width = n, width
        self.matrices = [_matrices(layer, labels) for layer in layers]
        self.skip = torch.stack([m.skip for m in self.matrices])  # (L, C, C): every layer's skip path
        self.skip_bias = sum(m.skip_bias for m in self.matrices)  # (C,)
        padded = (height + r, self.left + width + r)
        # each layer's vertical-stack input: the embedded codes, then layer k's output for layer k+1
        self.vertical = [torch.zeros(n, *padded, model.config.embedding_dim, device=device)]
        self.vertical += [torch.zeros(n, *padded, c, device=device) for _ in layers[1:]]
        self.vertical[0][:, r:, self.left : self.left + width] = model.embedding(codes)
        # each deeper layer's horizontal-stack input along the current row (layer 0's is the embedded row)
        self.row = [torch.zeros(n, self.left + width, c, device=device) for _ in layers[1:]]
        self.gated = torch.zeros(len(layers), n, c, device=device)  # each layer's gate at the current position
        self.links: list[torch.Tensor] = []

    def start_row(self, i: int) -> None:
        """Run the vertical stack on row i-1, now complete, for each layer's link into row i."""
        n, r, w = self.n, self.reach, self.width
        if i == 0:  # nothing above the first row: its link is zero, bias and all
            self.links = [m.horizontal_bias.expand(n, w, -1) for m in self.matrices]
            return
        self.links = []
        for k, m in enumerate(self.matrices):
            rows = self.vertical[k][:, i - 1 : i + r, 1 : 1 + w + 2 * r]  # rows i-1-r..i-1, columns -r..w-1+r
            windows = rows.unfold(2, 2 * r + 1, 1).permute(0, 2, 1, 4, 3).flatten(2)  # (n, w, (r+1) * k * C_in)
            features = F.linear(windows, m.vertical) + m.vertical_bias  # (n, w, 2C)
            f, g = features.chunk(2, dim=-1)
            if k + 1 < len(self.vertical):
                self.vertical[k + 1][:, i - 1 + r, self.left : self.left + w] = torch.tanh(f) * torch.sigmoid(g)
            self.links.append(F.linear(features, m.link, m.link_bias) + m.horizontal_bias)  # into row i

    def logits(self, i: int, j: int) -> torch.Tensor:
        """(n, K) logits of p(z_ij | z_<ij, label); keeps each layer's output at (i, j)."""
        r, c, last = self.reach, self.gated.shape[-1], len(self.layers) - 1
        for k, m in enumerate(self.matrices):
            if k == 0:  # the embedded row, shifted right: columns j-1-r..j-1
                source, start = self.vertical[0][:, i + r], j
            else:  # the previous layer's output along the row: columns j-r..j
                source, start = self.row[k - 1], j + 1
            window = source[:, start : start + r + 1].flatten(1)  # (n, (r+1) * C_in)
            features = torch.addmm(self.links[k][:, j], window, m.horizontal)  # (n, 2C)
            torch.mul(torch.tanh(features[:, :c]), torch.sigmoid(features[:, c:]), out=self.gated[k])
            if k < last:  # the layer's output, the next layer's input; layer 0 has no residual path
                kept = m.residual_bias if k == 0 else source[:, j + self.left] + m.residual_bias
                self.row[k][:, j + self.left] = torch.addmm(kept, self.gated[k], m.residual)
        total = torch.bmm(self.gated, self.skip).sum(0) + self.skip_bias  # (n, C): the sum of the skips
        relu, hidden, _, out = self.model.head
        x = F.linear(relu(total), hidden.weight.flatten(1), hidden.bias)  # the head's 1x1 convs as matmuls
        return F.linear(relu(x), out.weight.flatten(1), out.bias)  # (n, C) -> (n, K)

    def place(self, i: int, j: int, codes: torch.Tensor) -> None:
        """The codes (n,) int64 now at (i, j), as the layers after this position see them."""
        self.vertical[0][:, i + self.reach, j + self.left] = self.model.embedding(codes)
