"""The learned prior p(z): a gated PixelCNN over code grids (van den Oord et al. 2017, section 3.3).

After the VQ-VAE has trained with a uniform prior, an autoregressive prior is fitted on the code
grids of the training set; sampling z ~ p(z) and decoding makes images. This is the gated,
optionally conditional PixelCNN of van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders", written once, as convolutions:

    y = tanh(W_f * x + V_f^T h + U_f * s) * sigmoid(W_g * x + V_g^T h + U_g * s)    (section 2.3)

split into a vertical and a horizontal stack so there is no blind spot (section 2.2). h is a
class label (a learned bias per class, equation 4); s a map of features at the grid's size
(equation 5), another level's codes in VQ-VAE-2 (Razavi et al. 2019) or earlier frames', through
1x1 convolutions U (the paper's V * s). Each is optional, set by its own PriorConfig field, as is a
block of causal self-attention over the stacks' features before the output head (attention.py), as
in VQ-VAE-2's top prior.

The fast paths, the raster sampler (sampler.py) and the scorer without gradients (scoring.py),
compute the same layers as matrix products; they take those matrices from the layer itself
(`GatedLayer.matrices`, `GatedPixelCNN.head_matrices`), never from its attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PriorConfig
from ..numerics import settle_vector_maths
from ..placement import on_weights
from . import scoring
from .attention import CausalSelfAttention
from .draw import check_given, check_indices, check_sampling, generator, sample_categorical
from .gate import gate
from .sampler import RasterSampler


def _shift_down(x: torch.Tensor) -> torch.Tensor:
    """Row i takes row i-1, row 0 zeros: (B, C, h, w) -> (B, C, h, w)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """Column j takes column j-1, column 0 zeros: (B, C, h, w) -> (B, C, h, w)."""
    return F.pad(x, (1, 0))[..., :-1]


def _windows_last(conv: nn.Conv2d) -> torch.Tensor:
    return conv.weight.permute(0, 2, 3, 1).flatten(1)  # (O, I, kh, kw) -> (O, kh * kw * I)


@dataclass
class LayerMatrices:
    """One gated layer as matrices over channels-last windows (the fast paths' form of its convolutions).

    The biases are channels-last maps (n or 1, h or 1, w or 1, 2C): a convolution's bias, plus the
    label's, plus the conditioning map's contribution at each position when there is one.
    """

    vertical: torch.Tensor  # (2C, (r+1) * k * C_in): windows of rows i-r..i, columns j-r..j+r
    vertical_bias: torch.Tensor  # (n|1, h|1, w|1, 2C)
    link: torch.Tensor  # (2C, 2C), transposed: the vertical features as the horizontal stack hears them
    link_bias: torch.Tensor  # (2C,)
    horizontal: torch.Tensor  # ((r+1) * C_in, 2C), transposed: windows of columns j-r..j
    horizontal_bias: torch.Tensor  # (n|1, h|1, w|1, 2C)
    residual: torch.Tensor  # (C + 1, C), transposed, its bias as the last row
    skip: torch.Tensor  # (C + 1, C), transposed, its bias as the last row


@dataclass
class HeadMatrices:
    """The output head's two 1x1 convolutions, transposed for `addmm`: features (N, C) -> logits (N, K)."""

    hidden: torch.Tensor  # (C, C)
    hidden_bias: torch.Tensor  # (C,)
    out: torch.Tensor  # (C, K)
    out_bias: torch.Tensor  # (K,)


class GatedLayer(nn.Module):
    """One gated layer of both stacks (van den Oord et al. 2016, figure 2).

    The vertical stack at row i sees rows <= i of its input; its features reach the
    horizontal stack (`link`) shifted down one row, so (i, j) sees only rows < i from it. The
    horizontal stack at (i, j) sees columns <= j of its own row; in the first layer
    ("mask A") its input is shifted right, so code (i, j) never sees itself.
    """

    def __init__(self, in_channels: int, config: PriorConfig, first: bool):
        super().__init__()
        c, k = config.hidden_channels, config.kernel_size
        self.first = first
        self.reach = k // 2
        self.vertical = nn.Conv2d(in_channels, 2 * c, (self.reach + 1, k))  # W * x of the vertical stack
        self.horizontal = nn.Conv2d(in_channels, 2 * c, (1, self.reach + 1))  # W * x of the horizontal stack
        self.vertical_to_horizontal = nn.Conv2d(2 * c, 2 * c, 1)
        self.out = nn.Conv2d(c, 2 * c, 1)  # the residual and the skip path, in one conv
        self.dropout = nn.Dropout(config.dropout)
        # V^T h of equation 4: a learned bias per class, layer and stack
        self.label_vertical = nn.Embedding(config.num_classes, 2 * c) if config.num_classes else None
        self.label_horizontal = nn.Embedding(config.num_classes, 2 * c) if config.num_classes else None
        # U * s of equation 5: the conditioning map through a 1x1 convolution, per layer and stack
        m = condition_width(config)
        self.condition_vertical = nn.Conv2d(m, 2 * c, 1, bias=False) if m else None
        self.condition_horizontal = nn.Conv2d(m, 2 * c, 1, bias=False) if m else None

    def forward_vertical(
        self, v: torch.Tensor, labels: torch.Tensor | None, condition: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """v (B, C_in, rows, w) -> (next v (B, C, rows, w), features before the gate (B, 2C, rows, w)).

        Row i of the features reaches row i+1 of the horizontal stack through `link`.
        """
        r = self.reach
        features = self.vertical(F.pad(v, (r, r, r, 0)))  # rows i-r..i, columns j-r..j+r -> (B, 2C, rows, w)
        features = _conditioned(features, self.label_vertical, labels, self.condition_vertical, condition)
        return gate(features), features

    def link(self, features: torch.Tensor) -> torch.Tensor:
        """V * features of the vertical stack, as the horizontal stack hears them: (B, 2C, rows, w)."""
        return self.vertical_to_horizontal(features)

    def forward_horizontal(
        self, h: torch.Tensor, link: torch.Tensor, labels: torch.Tensor | None, condition: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, C_in, rows, cols), link from the row above (B, 2C, rows, cols) -> (next h, skip), each (B, C, ...)."""
        x = _shift_right(h) if self.first else h
        features = self.horizontal(F.pad(x, (self.reach, 0))) + link  # columns j-r..j -> (B, 2C, rows, cols)
        features = _conditioned(features, self.label_horizontal, labels, self.condition_horizontal, condition)
        residual, skip = self.out(self.dropout(gate(features))).chunk(2, dim=1)
        # the first layer's input holds code (i, j) itself, so it has no residual path
        return (residual if self.first else h + residual), skip

    def matrices(self, labels: torch.Tensor | None, condition: torch.Tensor | None) -> LayerMatrices:
        """This layer for the fast paths; labels (n,) and condition (n, M, h, w) as `forward` takes them."""
        c = self.out.in_channels
        out = torch.cat([_windows_last(self.out).T, self.out.bias[None]])  # (C + 1, 2C): residual, then skip
        return LayerMatrices(
            vertical=_windows_last(self.vertical),
            vertical_bias=_bias_last(
                self.vertical.bias, self.label_vertical, labels, self.condition_vertical, condition
            ),
            link=_windows_last(self.vertical_to_horizontal).T.contiguous(),
            link_bias=self.vertical_to_horizontal.bias,
            horizontal=_windows_last(self.horizontal).T.contiguous(),
            horizontal_bias=_bias_last(
                self.horizontal.bias, self.label_horizontal, labels, self.condition_horizontal, condition
            ),
            residual=out[:, :c].contiguous(),
            skip=out[:, c:].contiguous(),
        )


def _conditioned(
    features: torch.Tensor,
    embedding: nn.Embedding | None,
    labels: torch.Tensor | None,
    conv: nn.Conv2d | None,
    condition: torch.Tensor | None,
) -> torch.Tensor:
    """features (B, 2C, rows, w) plus the label's learned bias and the conditioning map's U * s."""
    if embedding is not None:
        features = features + embedding(labels)[:, :, None, None]  # (B, 2C) -> (B, 2C, 1, 1)
    if conv is not None:
        features = features + conv(condition)  # (B, M, h, w) -> (B, 2C, h, w)
    return features


def _bias_last(
    bias: torch.Tensor,
    embedding: nn.Embedding | None,
    labels: torch.Tensor | None,
    conv: nn.Conv2d | None,
    condition: torch.Tensor | None,
) -> torch.Tensor:
    """A convolution's bias (2C,), plus the label's and the map's, channels last: (n|1, h|1, w|1, 2C)."""
    total = bias if embedding is None else bias + embedding(labels)  # (2C,) or (n, 2C)
    total = total.reshape(-1, 1, 1, bias.shape[0])
    if conv is None:
        return total
    return total + F.linear(condition.permute(0, 2, 3, 1), conv.weight.flatten(1))  # (n, h, w, M) -> (n, h, w, 2C)


def condition_width(config: PriorConfig) -> int:
    """Channels of the map the gated layers hear: the map's own, or the conditioning stack's."""
    return config.hidden_channels if config.condition_layers else config.condition_channels


class ConditionStack(nn.Module):
    """s -> features of s at the grid's size, (B, M, h, w) -> (B, C, h, w): a 3x3 convolution and residual
    3x3 convolutions, so that each position hears its neighbourhood of the map (VQ-VAE-2's bottom prior
    reads the top codes through such a stack, Razavi et al. 2019, section 3.3). The map is known whole
    before any code is drawn, so the stack need not be causal, and runs once per grid."""

    def __init__(self, config: PriorConfig):
        super().__init__()
        c = config.hidden_channels
        self.first = nn.Conv2d(config.condition_channels, c, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(c, c, 3, padding=1) for _ in range(config.condition_layers - 1))

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        x = self.first(s)
        for block in self.blocks:
            x = x + block(F.relu(x))
        return F.relu(x)


class GatedPixelCNN(nn.Module):
    """p(z) = prod_t p(z_t | z_<t, label, s) over a code grid in raster order.

    indices: (B, h, w) int64 in [0, K); labels: (B,) int64 in [0, num_classes), given exactly
    when the config has num_classes > 0; condition: (B, M, h', w') float, given exactly when the
    config has condition_channels M > 0, brought to the grid's size (h, w) by nearest neighbours.
    Logits are (B, K, h, w).
    """

    def __init__(self, config: PriorConfig):
        super().__init__()
        settle_vector_maths()  # its gates' tanh: the same numbers in every process
        self.config = config
        c = config.hidden_channels
        self.embedding = nn.Embedding(config.num_embeddings, config.embedding_dim)
        widths = [config.embedding_dim] + [c] * (config.num_layers - 1)
        self.layers = nn.ModuleList(GatedLayer(w, config, first=i == 0) for i, w in enumerate(widths))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(c, c, 1), nn.ReLU(), nn.Conv2d(c, config.num_embeddings, 1))
        self.condition_stack = ConditionStack(config) if config.condition_layers else None
        positions = config.latent_height * config.latent_width
        heads = config.attention_heads
        self.attention = CausalSelfAttention(c, heads, positions) if heads else None

    @property
    def num_embeddings(self) -> int:
        return self.config.num_embeddings

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.config.latent_shape

    @on_weights
    def forward(
        self, indices: torch.Tensor, labels: torch.Tensor | None = None, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> logits (B, K, h, w) of p(z_t | z_<t, label, s)."""
        check_indices(indices, self.num_embeddings, self.latent_shape)
        condition = self._checked_inputs(labels, condition, indices.shape[0])
        x = self.embed(indices).permute(0, 3, 1, 2)  # (B, h, w, E) -> (B, E, h, w)
        features = self._horizontal(x, self._vertical(x, labels, condition), labels, condition)  # (B, C, h, w)
        if self.attention is not None:
            features = self.attention.over_grid(features)
        return self.head(features)

    @on_weights
    def log_prob(
        self, indices: torch.Tensor, labels: torch.Tensor | None = None, condition: torch.Tensor | None = None
    ) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> (B,) log p(z | label, s) of each whole grid, in nats.

        With gradients off and the model in eval mode, the same sums come from scoring.py's matrix
        products, which a CPU computes faster than the convolutions."""
        if not (self.training or torch.is_grad_enabled()):
            check_indices(indices, self.num_embeddings, self.latent_shape)
            condition = self._checked_inputs(labels, condition, indices.shape[0])
            return scoring.log_prob(self, indices, labels, condition)
        logits = self(indices, labels, condition)
        return -F.cross_entropy(logits, indices, reduction="none").sum(dim=(1, 2))  # (B, h, w) -> (B,)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw n grids (n, h, w) int64 position by position in raster order.

        labels: (n,) int64 when class-conditional; condition: (n, M, h', w') when map-conditional.
        given: (n, h, w) int64, codes >= 0 kept as they are and -1 drawn (completing a partly known
        grid). temperature 0 or top_k 1 decode greedily. The same seed gives the same grids; the
        global RNG is left alone.
        """
        return self.sample_scored(n, labels, temperature, top_k, seed, given, condition)[0]

    def sample_scored(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
        condition: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As `sample`, with log p(z | label, s) of each grid in nats, (n,): the model's own
        probabilities (temperature 1) of the codes, read off the logits the draw computed,
        so it equals `log_prob` of the grids without a second pass."""
        check_sampling(temperature, top_k, n)
        given = check_given(given, n, self.num_embeddings, self.latent_shape)
        drawn_by = generator(seed)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                condition = self._checked_inputs(labels, condition, n)
                return self._sample(given, labels, condition, temperature, top_k, drawn_by)
        finally:
            self.train(was_training)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Each code's learned embedding, channels last: (B, h, w) int64 -> (B, h, w, E)."""
        return self.embedding(indices)

    def embedding_matrix(self) -> torch.Tensor:
        """(K, E): row k is code k's embedding, for a fast path's own lookups."""
        return self.embedding.weight

    def head_matrices(self) -> HeadMatrices:
        _, hidden, _, out = self.head
        return HeadMatrices(
            hidden.weight.flatten(1).T.contiguous(), hidden.bias, out.weight.flatten(1).T.contiguous(), out.bias
        )

    def _vertical(
        self, x: torch.Tensor, labels: torch.Tensor | None, condition: torch.Tensor | None
    ) -> list[torch.Tensor]:
        """The vertical stack over x (B, E, h, w): each layer's link into row i from rows < i, (B, 2C, h, w)."""
        links = []
        v = x
        for layer in self.layers:
            v, features = layer.forward_vertical(v, labels, condition)
            links.append(_shift_down(layer.link(features)))  # row i hears rows < i only
        return links

    def _horizontal(
        self, x: torch.Tensor, links: list[torch.Tensor], labels: torch.Tensor | None, condition: torch.Tensor | None
    ) -> torch.Tensor:
        """The horizontal stack over x (B, E, h, w): the sum of its skip connections, (B, C, h, w)."""
        h, total = x, 0
        for layer, link in zip(self.layers, links):
            h, skip = layer.forward_horizontal(h, link, labels, condition)
            total = total + skip
        return total

    def _sample(
        self,
        given: torch.Tensor,
        labels: torch.Tensor | None,
        condition: torch.Tensor | None,
        temperature: float,
        top_k: int | None,
        drawn_by: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raster order, each step running the stacks only where it must (sampler.py).
        Returns the grids and their log p(z) in nats."""
        device = self.embedding.weight.device
        free = (given < 0).to(device)
        every_free = bool(free.all())
        labels = None if labels is None else labels.to(device)
        condition = None if condition is None else condition.to(device)
        n, height, width = given.shape
        sampler = RasterSampler(self, given.clamp(min=0).to(device), labels, condition)  # placeholders until drawn
        for i in range(height):
            sampler.start_row(i)
            for j in range(width):
                drawn = sample_categorical(sampler.logits(i, j), temperature, top_k, drawn_by).to(device)  # (n,)
                if not every_free:  # a given code stays
                    drawn = torch.where(free[:, i, j], drawn, sampler.indices[:, i, j])
                sampler.place(i, j, drawn)
        return sampler.indices.cpu(), sampler.log_prob().cpu()

    def _checked_inputs(
        self, labels: torch.Tensor | None, condition: torch.Tensor | None, batch: int
    ) -> torch.Tensor | None:
        """Checks labels and the conditioning map against the config; returns the map at the grid's size,
        through the conditioning stack when there is one: what every gated layer hears."""
        self._check_labels(labels, batch)
        channels = self.config.condition_channels
        if channels == 0:
            if condition is not None:
                raise ValueError("this prior takes no conditioning map (condition_channels = 0): pass condition=None")
            return None
        if condition is None:
            raise ValueError(f"this prior is conditioned on a map: pass condition, (B, {channels}, h, w) float")
        if not condition.is_floating_point() or condition.dim() != 4 or tuple(condition.shape[:2]) != (batch, channels):
            raise ValueError(
                f"condition must be float of shape ({batch}, {channels}, h, w), got {condition.dtype} "
                f"{tuple(condition.shape)}"
            )
        return self.hear(condition)

    def hear(self, condition: torch.Tensor) -> torch.Tensor:
        """The conditioning map (B, M, h', w') as every gated layer hears it: brought to the grid's size by
        nearest neighbours, then through the conditioning stack when there is one. The fast paths
        (sampler.py, scoring.py) take the map in this form."""
        if tuple(condition.shape[2:]) != self.latent_shape:
            condition = F.interpolate(condition, size=self.latent_shape, mode="nearest")
        return condition if self.condition_stack is None else self.condition_stack(condition)

    def _check_labels(self, labels: torch.Tensor | None, batch: int) -> None:
        classes = self.config.num_classes
        if classes == 0:
            if labels is not None:
                raise ValueError("this prior is unconditional (num_classes = 0): pass labels=None")
            return
        if labels is None:
            raise ValueError(f"this prior is class-conditional: pass labels, (B,) int64 in [0, {classes})")
        if labels.dtype != torch.int64 or tuple(labels.shape) != (batch,):
            raise ValueError(f"labels must be int64 of shape ({batch},), got {labels.dtype} {tuple(labels.shape)}")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            raise ValueError(f"labels must lie in [0, {classes})")
