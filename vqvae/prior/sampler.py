"""Raster-order sampling for the gated PixelCNN (network.py), running each stack only where it must.

Drawing a grid takes h*w steps. Position (i, j) sees the rows above only through the
vertical stack's links into row i, and its own row only through columns < j of the
horizontal stack. So the vertical stack runs once per row, on the row just finished, the
horizontal stack once per position, on the position just reached, and every layer's
outputs are kept: the logits equal `GatedPixelCNN.forward`'s, and a step costs the same on
any grid size.

On one step's tiny tensors a convolution call costs far more in dispatch than in arithmetic.
So each layer comes as matrices (`GatedLayer.matrices`) over channels-last windows, every
result is written into a buffer made once (`out=`), the views a position reads are made once,
and biases ride along as a column of ones (a layer's residual and skip paths, each one matrix
product). Each layer's input is kept zero-padded so that every window is a plain slice:

    rows     r zero rows above the grid (the vertical stack sees rows i-r..i)
    columns  r+1 zero columns on the left (the first layer's input is shifted right), r on the right

with r = kernel_size // 2, the stacks' reach.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .gate import gate_into

if TYPE_CHECKING:
    from .network import GatedPixelCNN, LayerMatrices


def _row(bias: torch.Tensor, i: int) -> torch.Tensor:
    """Row i of a channels-last bias map (n|1, h|1, w|1, 2C) -> (n|1, w|1, 2C)."""
    return bias[:, min(i, bias.shape[1] - 1)]


class _RowBiases:
    """Each layer's horizontal bias along a row, as the links of that row start: (n * w, 2C).

    Row 0 hears no link from above, its bias and all; a later row hears the link's bias too. A bias
    that is the same on every row (no conditioning map) is worked out once.
    """

    def __init__(self, m: LayerMatrices, n: int, width: int):
        self.m, self.n, self.width = m, n, width
        self.same_every_row = m.horizontal_bias.shape[1] == 1
        self.first = self._first(0)
        self.later = self._later(1) if self.same_every_row else None

    def _first(self, i: int) -> torch.Tensor:
        bias = self.m.horizontal_bias
        return _row(bias, i).expand(self.n, self.width, -1).reshape(self.n * self.width, bias.shape[-1])

    def _later(self, i: int) -> torch.Tensor:
        horizontal = _row(self.m.horizontal_bias, i).expand(self.n, self.width, -1)
        return (horizontal + self.m.link_bias).reshape(self.n * self.width, horizontal.shape[-1])

    def of(self, i: int) -> torch.Tensor:
        if i == 0:
            return self.first
        return self.later if self.same_every_row else self._later(i)


class RasterSampler:
    """The caches of one batch of grids being drawn. Call `start_row(i)` at each row, then
    `logits(i, j)` and `place(i, j, drawn)` at each of its positions, in raster order;
    `log_prob()` at the end scores the placed codes with the logits seen on the way."""

    def __init__(
        self,
        model: GatedPixelCNN,
        indices: torch.Tensor,
        labels: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ):
        """indices: (n, h, w) int64, the placeholders of positions not drawn yet included; labels and
        condition as the gated layers hear it (`GatedPixelCNN.hear`: at the grid's size, through any stack)."""
        layers = model.layers
        self.model, self.num_layers = model, len(layers)
        self.reach = r = layers[0].reach
        self.left = r + 1
        n, height, width = indices.shape
        c, device = model.config.hidden_channels, indices.device
        self.n, self.width, self.indices = n, width, indices.clone()
        self.matrices = [layer.matrices(labels, condition) for layer in layers]
        self.row_biases = [_RowBiases(m, n, width) for m in self.matrices]
        padded = (height + r, self.left + width + r)
        # each layer's vertical-stack input: the embedded codes, then layer k's output for layer k+1
        self.vertical = [torch.zeros(n, *padded, model.config.embedding_dim, device=device)]
        self.vertical += [torch.zeros(n, *padded, c, device=device) for _ in layers[1:]]
        self.vertical[0][:, r:, self.left : self.left + width] = model.embed(indices)
        # each layer's link from the row above into the current row, and the views one position reads
        self.links = [torch.empty(n, width, 2 * c, device=device) for _ in layers]
        self.link_at = [[links[:, j] for j in range(width)] for links in self.links]  # (n, 2C) each
        # each layer's output along the current row (the next layer's horizontal input)
        rows = [torch.zeros(n, self.left + width, c, device=device) for _ in layers[:-1]]
        self.window_at = [[row[:, j + 1 : j + 2 + r].flatten(1) for j in range(width)] for row in rows]
        self.output_at = [[row[:, j + self.left] for j in range(width)] for row in rows]  # (n, C) each
        # every layer's gate at the current position, then a 1 that carries the biases: (n, L, C + 1)
        self.gated = torch.ones(n, len(layers), c + 1, device=device)
        self.gate_of = [self.gated[:, k, :c] for k in range(len(layers))]
        self.gate_and_one = [self.gated[:, k] for k in range(len(layers))]
        self.every_gate = self.gated.view(n, len(layers) * (c + 1))
        self.skip = torch.cat([m.skip for m in self.matrices])  # (L * (C + 1), C): every skip path, biases too
        self.features = torch.empty(n, 2 * c, device=device)
        self.total, self.hidden = torch.empty(n, c, device=device), torch.empty(n, c, device=device)
        self.head = model.head_matrices()
        self.embedding = model.embedding_matrix()  # (K, E)
        self.seen = torch.empty(height, width, n, model.num_embeddings, device=device)  # the logits at each position
        self.attention = model.attention  # its keys and values of the positions drawn so far
        self.attention_cache = None if self.attention is None else self.attention.new_cache(n, device)

    def start_row(self, i: int) -> None:
        """Run the vertical stack on row i-1, now complete, for each layer's link into row i."""
        r, w = self.reach, self.width
        for k, (m, biases) in enumerate(zip(self.matrices, self.row_biases)):
            links = self.links[k].view(self.n * w, self.links[k].shape[-1])  # (n, w, 2C) -> (n * w, 2C)
            if i == 0:  # nothing above the first row
                links.copy_(biases.of(0))
                continue
            rows = self.vertical[k][:, i - 1 : i + r, 1 : 1 + w + 2 * r]  # rows i-1-r..i-1, columns -r..w-1+r
            windows = rows.unfold(2, 2 * r + 1, 1).permute(0, 2, 1, 4, 3).flatten(2)  # (n, w, (r+1) * k * C_in)
            features = F.linear(windows, m.vertical) + _row(m.vertical_bias, i - 1)  # (n, w, 2C)
            torch.addmm(biases.of(i), features.view(links.shape), m.link, out=links)
            if k + 1 < len(self.vertical):
                gate_into(features, self.vertical[k + 1][:, i - 1 + r, self.left : self.left + w])

    def logits(self, i: int, j: int) -> torch.Tensor:
        """(n, K) logits of p(z_ij | z_<ij, label, s); keeps each layer's output at (i, j)."""
        r, last = self.reach, self.num_layers - 1
        for k, m in enumerate(self.matrices):
            if k == 0:  # the embedded row, shifted right: columns j-1-r..j-1
                window = self.vertical[0][:, i + r, j : j + r + 1].flatten(1)  # (n, (r+1) * E)
            else:  # the previous layer's output along the row: columns j-r..j
                window = self.window_at[k - 1][j]  # (n, (r+1) * C)
            torch.addmm(self.link_at[k][j], window, m.horizontal, out=self.features)  # (n, 2C)
            gate_into(self.features, self.gate_of[k])
            if k == last:
                break
            # the layer's output, the next layer's input; layer 0 has no residual path
            if k == 0:
                torch.mm(self.gate_and_one[k], m.residual, out=self.output_at[k][j])
            else:
                torch.addmm(self.output_at[k - 1][j], self.gate_and_one[k], m.residual, out=self.output_at[k][j])
        head = self.head  # the head's 1x1 convs as matmuls
        torch.mm(self.every_gate, self.skip, out=self.total)  # (n, C): the sum of the skips
        if self.attention is not None:
            self.total.copy_(self.attention.step(self.total, i * self.width + j, self.attention_cache))
        self.total.relu_()
        torch.addmm(head.hidden_bias, self.total, head.hidden, out=self.hidden).relu_()
        return torch.addmm(head.out_bias, self.hidden, head.out, out=self.seen[i, j])  # (n, C) -> (n, K)

    def place(self, i: int, j: int, drawn: torch.Tensor) -> None:
        """The codes (n,) int64 now at (i, j), as the layers after this position see them."""
        self.indices[:, i, j] = drawn
        self.vertical[0][:, i + self.reach, j + self.left] = F.embedding(drawn, self.embedding)

    def log_prob(self) -> torch.Tensor:
        """(n,) log p(z | label, s) in nats of the placed codes, from the logits seen at each position."""
        chosen = self.indices.permute(1, 2, 0)[..., None]  # (n, h, w) -> (h, w, n, 1)
        return self.seen.log_softmax(dim=-1).gather(-1, chosen).sum(dim=(0, 1, 3))  # (h, w, n, 1) -> (n,)
