"""Priors over code grids p(z) (van den Oord et al. 2017, section 3.3 "Prior", and 4.2).

The VQ-VAE trains with a uniform prior (section 3.1: KL = log K); afterwards an
autoregressive prior is fitted on the code grids of the training set, and sampling
z ~ p(z) then decoding makes images. Three priors with one interface (`log_prob`, `sample`, `num_embeddings`,
`latent_shape`):
- `GatedPixelCNN`: the gated, optionally class-conditional PixelCNN of van den Oord
  et al. 2016, "Conditional Image Generation with PixelCNN Decoders": gated layers
  y = tanh(W_f * x + V_f^T h) * sigmoid(W_g * x + V_g^T h) (equation 4, section 2.3),
  split into a vertical and a horizontal stack so there is no blind spot (section 2.2).
- `UniformPrior`: every code 1/K at every position, the prior the VQ-VAE trains with.
- `UnigramPrior`: the training set's code frequencies, the same at every position.
All three sample through `sample_categorical`, so temperature and top-k mean the same.
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from . import scoring
from .config import PriorConfig
from .numerics import settle_vector_maths
from .sampler import RasterSampler


class Prior(Protocol):
    """What every prior over (h, w) grids of K codes offers."""

    @property
    def num_embeddings(self) -> int: ...

    @property
    def latent_shape(self) -> tuple[int, int]: ...

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor: ...

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


def sample_categorical(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Draw one code per row of logits (N, K) -> (N,) int64.

    temperature 0 (or top_k 1) takes the argmax; top_k keeps the k most likely codes
    (more on ties). The draw uses `generator`, never the global RNG: one uniform number
    per row, mapped through the cumulative distribution (much cheaper than multinomial).
    """
    if temperature == 0 or top_k == 1:
        return logits.argmax(dim=1)
    logits = logits.double()  # float64, so the running sum reaches its total
    if temperature != 1:
        logits = logits / temperature
    if top_k is not None and top_k < logits.shape[1]:
        kth = logits.topk(top_k, dim=1).values[:, -1:]  # (N, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    cdf = logits.softmax(dim=1).cumsum(dim=1)  # (N, K)
    u = torch.rand(cdf.shape[0], 1, generator=generator, dtype=cdf.dtype).to(cdf.device) * cdf[:, -1:]
    # right=True: a code of probability 0 adds nothing to the cdf, so no u lands on it
    return torch.searchsorted(cdf, u, right=True).clamp_(max=cdf.shape[1] - 1).squeeze(1)


def _check_sampling(temperature: float, top_k: int | None) -> None:
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")


def _generator(seed: int | None) -> torch.Generator:
    """A local RNG: seeded for a reproducible draw, else from the OS. The global RNG is left alone."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def _check_indices(indices: torch.Tensor, num_embeddings: int, latent_shape: tuple[int, int]) -> None:
    if indices.dtype != torch.int64:
        raise ValueError(f"indices must be int64, got {indices.dtype}")
    if indices.dim() != 3 or tuple(indices.shape[1:]) != latent_shape:
        h, w = latent_shape
        raise ValueError(f"indices must have shape (B, {h}, {w}), got {tuple(indices.shape)}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_embeddings):
        raise ValueError(f"indices must lie in [0, {num_embeddings})")


def _check_given(
    given: torch.Tensor | None, n: int, num_embeddings: int, latent_shape: tuple[int, int]
) -> torch.Tensor:
    """The codes to keep, (n, h, w) int64, -1 where a code is to be drawn."""
    if given is None:
        return torch.full((n, *latent_shape), -1, dtype=torch.int64)
    if given.dtype != torch.int64 or tuple(given.shape) != (n, *latent_shape):
        raise ValueError(f"given must be int64 of shape ({n}, {latent_shape[0]}, {latent_shape[1]})")
    if given.numel() and (int(given.min()) < -1 or int(given.max()) >= num_embeddings):
        raise ValueError(f"given must hold codes in [0, {num_embeddings}) or -1 (to sample)")
    return given.cpu()


def _fill_independent(
    log_probs: torch.Tensor,
    n: int,
    latent_shape: tuple[int, int],
    temperature: float,
    top_k: int | None,
    seed: int | None,
    given: torch.Tensor | None,
) -> torch.Tensor:
    """Every free position drawn independently from one distribution log_probs (K,)."""
    _check_sampling(temperature, top_k)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    given = _check_given(given, n, log_probs.shape[0], latent_shape)
    logits = log_probs.cpu().expand(given.numel(), -1)  # (K,) -> (n*h*w, K)
    drawn = sample_categorical(logits, temperature, top_k, _generator(seed)).view_as(given)
    return torch.where(given >= 0, given, drawn)


class UniformPrior(nn.Module):
    """p(z) = 1/K at every position: the prior the VQ-VAE trains with (section 3.1)."""

    def __init__(self, num_embeddings: int, latent_shape: tuple[int, int]):
        super().__init__()
        if num_embeddings < 2 or min(latent_shape) < 1:
            raise ValueError("a uniform prior needs num_embeddings >= 2 and a grid of at least 1x1")
        self.num_embeddings = num_embeddings
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> (B,) -h*w*log K nats; labels are ignored."""
        _check_indices(indices, self.num_embeddings, self.latent_shape)
        h, w = self.latent_shape
        return torch.full((indices.shape[0],), -h * w * math.log(self.num_embeddings), device=indices.device)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n grids (n, h, w) int64 of independent uniform codes; labels are ignored."""
        log_probs = torch.full((self.num_embeddings,), -math.log(self.num_embeddings))
        return _fill_independent(log_probs, n, self.latent_shape, temperature, top_k, seed, given)


class UnigramPrior(nn.Module):
    """p(z) = prod over positions of p(k), with p(k) the training set's code frequencies."""

    def __init__(self, probs: torch.Tensor, latent_shape: tuple[int, int]):
        """probs: (K,) positive; normalised to sum to 1."""
        super().__init__()
        if probs.dim() != 1 or probs.shape[0] < 2 or not bool((probs > 0).all()):
            raise ValueError("probs must be a (K,) tensor of positive numbers, K >= 2")
        if min(latent_shape) < 1:
            raise ValueError("latent_shape must be at least 1x1")
        self.latent_shape = (int(latent_shape[0]), int(latent_shape[1]))
        self.register_buffer("log_probs", (probs / probs.sum()).float().log())  # (K,)

    @classmethod
    def fit(cls, indices: torch.Tensor, num_embeddings: int, smoothing: float = 1.0) -> UnigramPrior:
        """Count codes in indices (N, h, w) int64 in [0, K), adding `smoothing` to every count (Laplace)."""
        if not (math.isfinite(smoothing) and smoothing > 0):
            raise ValueError("smoothing must be > 0, so that no code has probability zero")
        if num_embeddings < 2:
            raise ValueError("num_embeddings (K) must be at least 2")
        if indices.dim() != 3:
            raise ValueError(f"indices must have shape (N, h, w), got {tuple(indices.shape)}")
        _check_indices(indices, num_embeddings, (indices.shape[1], indices.shape[2]))
        counts = torch.bincount(indices.flatten().cpu(), minlength=num_embeddings).double() + smoothing  # (K,)
        return cls(counts, (indices.shape[1], indices.shape[2]))

    @property
    def num_embeddings(self) -> int:
        return self.log_probs.shape[0]

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> (B,) sum of log p(k) in nats; labels are ignored."""
        _check_indices(indices, self.num_embeddings, self.latent_shape)
        return self.log_probs[indices].sum(dim=(1, 2))  # (B, h, w) -> (B,)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n grids (n, h, w) int64, each position drawn independently from p(k); labels are ignored."""
        return _fill_independent(self.log_probs, n, self.latent_shape, temperature, top_k, seed, given)


def _shift_down(x: torch.Tensor) -> torch.Tensor:
    """Row i takes row i-1, row 0 zeros: (B, C, h, w) -> (B, C, h, w)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def _shift_right(x: torch.Tensor) -> torch.Tensor:
    """Column j takes column j-1, column 0 zeros: (B, C, h, w) -> (B, C, h, w)."""
    return F.pad(x, (1, 0))[..., :-1]


def _gate(x: torch.Tensor) -> torch.Tensor:
    """tanh(f) * sigmoid(g) for x = [f, g] on channels: (B, 2C, h, w) -> (B, C, h, w)."""
    f, g = x.chunk(2, dim=1)
    return torch.tanh(f) * torch.sigmoid(g)


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

    def forward_vertical(self, v: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """v (B, C_in, rows, w) -> (next v (B, C, rows, w), features before the gate (B, 2C, rows, w)).

        Row i of the features reaches row i+1 of the horizontal stack through `link`.
        """
        r = self.reach
        features = self.vertical(F.pad(v, (r, r, r, 0)))  # rows i-r..i, columns j-r..j+r -> (B, 2C, rows, w)
        features = features + _label_bias(self.label_vertical, labels)
        return _gate(features), features

    def link(self, features: torch.Tensor) -> torch.Tensor:
        """V * features of the vertical stack, as the horizontal stack hears them: (B, 2C, rows, w)."""
        return self.vertical_to_horizontal(features)

    def forward_horizontal(
        self, h: torch.Tensor, link: torch.Tensor, labels: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, C_in, rows, cols), link from the row above (B, 2C, rows, cols) -> (next h, skip), each (B, C, ...)."""
        x = _shift_right(h) if self.first else h
        features = self.horizontal(F.pad(x, (self.reach, 0))) + link  # columns j-r..j -> (B, 2C, rows, cols)
        features = features + _label_bias(self.label_horizontal, labels)
        residual, skip = self.out(self.dropout(_gate(features))).chunk(2, dim=1)
        # the first layer's input holds code (i, j) itself, so it has no residual path
        return (residual if self.first else h + residual), skip


def _label_bias(embedding: nn.Embedding | None, labels: torch.Tensor | None) -> torch.Tensor | float:
    """A learned bias per class, (B, 2C, 1, 1), or 0 for an unconditional model."""
    return 0.0 if embedding is None else embedding(labels)[:, :, None, None]


class GatedPixelCNN(nn.Module):
    """p(z) = prod_t p(z_t | z_<t, label) over a code grid in raster order.

    indices: (B, h, w) int64 in [0, K); labels: (B,) int64 in [0, num_classes), given
    exactly when the config has num_classes > 0. Logits are (B, K, h, w).
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

    @property
    def num_embeddings(self) -> int:
        return self.config.num_embeddings

    @property
    def latent_shape(self) -> tuple[int, int]:
        return self.config.latent_shape

    def forward(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> logits (B, K, h, w) of p(z_t | z_<t, label)."""
        _check_indices(indices, self.num_embeddings, self.latent_shape)
        self._check_labels(labels, indices.shape[0])
        x = self._embed(indices)
        return self.head(self._horizontal(x, self._vertical(x, labels), labels))

    def log_prob(self, indices: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """indices: (B, h, w) int64 in [0, K) -> (B,) log p(z | label) of each whole grid, in nats.

        With gradients off and the model in eval mode, the same sums come from scoring.py's matrix
        products, 1.3-1.5x faster on a CPU than the convolutions."""
        if not (self.training or torch.is_grad_enabled()):
            _check_indices(indices, self.num_embeddings, self.latent_shape)
            self._check_labels(labels, indices.shape[0])
            return scoring.log_prob(self, indices, labels)
        logits = self(indices, labels)
        return -F.cross_entropy(logits, indices, reduction="none").sum(dim=(1, 2))  # (B, h, w) -> (B,)

    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw n grids (n, h, w) int64 position by position in raster order.

        labels: (n,) int64 when class-conditional. given: (n, h, w) int64, codes >= 0 kept
        as they are and -1 drawn (completing a partly known grid). temperature 0 or top_k 1
        decode greedily. The same seed gives the same grids; the global RNG is left alone.
        """
        return self.sample_scored(n, labels, temperature, top_k, seed, given)[0]

    def sample_scored(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int | None = None,
        given: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """As `sample`, with log p(z | label) of each grid in nats, (n,): the model's own
        probabilities (temperature 1) of the codes, read off the logits the draw computed,
        so it equals `log_prob` of the grids without a second pass."""
        _check_sampling(temperature, top_k)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self._check_labels(labels, n)
        given = _check_given(given, n, self.num_embeddings, self.latent_shape)
        generator = _generator(seed)
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self._sample(given, labels, temperature, top_k, generator)
        finally:
            self.train(was_training)

    def _embed(self, indices: torch.Tensor) -> torch.Tensor:
        return self.embedding(indices).permute(0, 3, 1, 2)  # (B, h, w, E) -> (B, E, h, w)

    def _vertical(self, x: torch.Tensor, labels: torch.Tensor | None) -> list[torch.Tensor]:
        """The vertical stack over x (B, E, h, w): each layer's link into row i from rows < i, (B, 2C, h, w)."""
        links = []
        v = x
        for layer in self.layers:
            v, features = layer.forward_vertical(v, labels)
            links.append(_shift_down(layer.link(features)))  # row i hears rows < i only
        return links

    def _horizontal(self, x: torch.Tensor, links: list[torch.Tensor], labels: torch.Tensor | None) -> torch.Tensor:
        """The horizontal stack over x (B, E, h, w): the sum of its skip connections, (B, C, h, w)."""
        h, total = x, 0
        for layer, link in zip(self.layers, links):
            h, skip = layer.forward_horizontal(h, link, labels)
            total = total + skip
        return total

    def _sample(
        self,
        given: torch.Tensor,
        labels: torch.Tensor | None,
        temperature: float,
        top_k: int | None,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raster order, each step running the stacks only where it must (sampler.py).
        Returns the grids and their log p(z) in nats."""
        device = self.embedding.weight.device
        free = (given < 0).to(device)
        every_free = bool(free.all())
        labels = None if labels is None else labels.to(device)
        n, height, width = given.shape
        sampler = RasterSampler(self, given.clamp(min=0).to(device), labels)  # placeholders until drawn
        for i in range(height):
            sampler.start_row(i)
            for j in range(width):
                drawn = sample_categorical(sampler.logits(i, j), temperature, top_k, generator).to(device)  # (n,)
                sampler.place(i, j, drawn if every_free else torch.where(free[:, i, j], drawn, sampler.codes[:, i, j]))
        return sampler.codes.cpu(), sampler.log_prob().cpu()

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
