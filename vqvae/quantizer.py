"""Vector quantisation of the encoder output (van den Oord et al. 2017, section 3.1).

z_e (B, D, h, w) is replaced position by position with its nearest code,
k = argmin_j ||z_e - e_j||_2, z_q = e_k (equation 1-2). The gradient passes from
z_q to z_e unchanged: z_q = z_e + sg[e_k - z_e] (the straight-through estimator), computed as
sg[e_k] + (z_e - sg[z_e]) so that its value is e_k to the last bit, as decoding the indices gives.

Two ways to learn the codebook, one class each:
- `VectorQuantizer`: the codebook term ||sg[z_e] - e||^2 of equation 3.
- `VectorQuantizerEMA`: exponential moving averages of the assigned encoder
  outputs (appendix A.1), Laplace-smoothed cluster sizes, no codebook term.
Both carry the commitment term beta * ||z_e - sg[e]||^2 (equation 3, beta = 0.25).

Options that keep the whole codebook in use (all off in the plain paper setting):
codebook initialised from the first batch's encoder outputs (random samples or
k-means), dead-code restart (a code unused for N training steps is re-seeded from
current encoder outputs), and l2-normalised (cosine) codes.

The search, the codebook's statistics and both loss terms are computed in float32, under mixed
precision too (runtime.py). In a data-parallel run (distributed.py) the code counts and EMA sums
are summed over every rank, and initialisations and restarts are drawn on rank 0 from every
rank's encoder outputs, so each rank holds the same codebook after every step: the one a single
process would hold after the same whole batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import QuantizerConfig
from .distributed import from_main, rows_of_every_rank, sum_across_ranks
from .metrics import perplexity
from .placement import on_weights


@dataclass
class QuantizerOutput:
    z_q: torch.Tensor  # (B, D, h, w), straight-through: forward value e_k, gradient to z_e
    indices: torch.Tensor  # (B, h, w) int64
    loss: torch.Tensor  # codebook_loss + commitment_cost * commitment_loss
    codebook_loss: torch.Tensor  # ||sg[z_e] - e||^2 (zero for the EMA update)
    commitment_loss: torch.Tensor  # ||z_e - sg[e]||^2, before the beta weight
    perplexity: torch.Tensor  # of this batch's code usage
    counts: torch.Tensor  # (K,) how many positions chose each code


def kmeans(z: torch.Tensor, k: int, iters: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on z (N, D), seeded with k random rows; an empty cluster keeps its centre."""
    rows = (
        torch.randint(0, z.shape[0], (k,), generator=generator)
        if z.shape[0] < k
        else torch.randperm(z.shape[0], generator=generator)[:k]
    )
    centres = z[rows].clone()  # (k, D)
    for _ in range(iters):
        assign = nearest_code(z, centres)  # (N,)
        sums = torch.zeros_like(centres).index_add_(0, assign, z)
        sizes = torch.bincount(assign, minlength=k).to(z.dtype)
        filled = sizes > 0
        centres[filled] = sums[filled] / sizes[filled, None]
    return centres


def uniform_codebook(config: QuantizerConfig) -> torch.Tensor:
    """The paper's initialisation: (K, D) uniform in [-1/K, 1/K]."""
    k = config.num_embeddings
    return torch.empty(k, config.embedding_dim).uniform_(-1.0 / k, 1.0 / k)


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """argmin_j ||z_i - e_j||^2 for z (N, D) and codebook (K, D) -> (N,) int64.

    ||z||^2 is the same for every j, so it is left out of the comparison. `min(dim).indices`
    picks the same (first) index as `argmin` at about half the cost on CPU.
    """
    distances = torch.addmm(codebook.pow(2).sum(1), z, codebook.t(), alpha=-2.0)  # (N, K)
    return distances.min(dim=1).indices


class _Quantizer(nn.Module):
    """What both codebook updates share: search, straight-through, init, restarts."""

    def __init__(self, config: QuantizerConfig):
        super().__init__()
        self.config = config
        k = config.num_embeddings
        self.register_buffer("initialised", torch.tensor(config.init == "uniform"))
        self.register_buffer("steps_since_used", torch.zeros(k, dtype=torch.int64))
        self.register_buffer("usage", torch.ones(k))  # running mean of each code's hits per step

    @property
    def num_embeddings(self) -> int:
        return self.config.num_embeddings

    @property
    def codebook(self) -> torch.Tensor:
        """The codes as the nearest-code search sees them, (K, D)."""
        weight = self._weight()
        return F.normalize(weight, dim=1) if self.config.cosine else weight

    def _weight(self) -> torch.Tensor:
        raise NotImplementedError

    def _flatten(self, z_e: torch.Tensor) -> torch.Tensor:
        z = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])  # (B, D, h, w) -> (B*h*w, D)
        return F.normalize(z, dim=1) if self.config.cosine else z

    @on_weights
    def indices(self, z_e: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices (B, h, w) for z_e (B, D, h, w); never changes the codebook."""
        b, _, h, w = z_e.shape
        return nearest_code(self._flatten(z_e), self.codebook).view(b, h, w)

    @on_weights
    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Look codes up: indices (B, h, w) -> z_q (B, D, h, w)."""
        return self.codebook[indices].permute(0, 3, 1, 2).contiguous()  # (B, h, w, D) -> (B, D, h, w)

    def forward(self, z_e: torch.Tensor) -> QuantizerOutput:
        with torch.autocast(z_e.device.type, enabled=False):  # distances and statistics in float32
            return self._quantise(z_e.float())

    def _quantise(self, z_e: torch.Tensor) -> QuantizerOutput:
        b, d, h, w = z_e.shape
        z = self._flatten(z_e)  # (B*h*w, D)
        if self.training and not bool(self.initialised):
            self._initialise(z.detach())
        codebook = self.codebook
        indices = nearest_code(z.detach(), codebook.detach())  # (B*h*w,)
        e = codebook[indices]  # (B*h*w, D)
        counts = torch.bincount(indices, minlength=self.num_embeddings)
        if self.training:
            sum_across_ranks(counts)  # the whole batch's usage, on every rank
            self._learn(z.detach(), indices, counts)
        commitment_loss = F.mse_loss(z, e.detach())
        codebook_loss = self._codebook_loss(z, e)
        # straight-through: forward exactly e (z - sg[z] is zero), backward identity to z
        z_q = e.detach() + (z - z.detach())
        z_q = z_q.view(b, h, w, d).permute(0, 3, 1, 2)  # (B*h*w, D) -> (B, D, h, w)
        return QuantizerOutput(
            z_q=z_q,
            indices=indices.view(b, h, w),
            loss=codebook_loss + self.config.commitment_cost * commitment_loss,
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            perplexity=perplexity(counts),
            counts=counts,
        )

    def _codebook_loss(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def _initialise(self, z: torch.Tensor) -> None:
        """Codes drawn from the first batch's encoder outputs, every rank's (drawn on rank 0)."""
        k = self.num_embeddings
        z = rows_of_every_rank(z)
        if self.config.init == "kmeans":
            codes = kmeans(z, k, self.config.kmeans_iters)
        else:  # "samples"
            rows = torch.randint(0, z.shape[0], (k,)) if z.shape[0] < k else torch.randperm(z.shape[0])[:k]
            codes = z[rows]
        self._set_codes(torch.ones(k, dtype=torch.bool, device=z.device), from_main(codes.contiguous()))
        self.initialised.fill_(True)

    @torch.no_grad()
    def _learn(self, z: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        """Training-mode bookkeeping after the search: the EMA update, then dead-code restarts."""
        self.steps_since_used.add_(1).masked_fill_(counts > 0, 0)
        n = self.config.dead_code_steps
        if n > 0:
            self.usage.mul_(1 - 1 / n).add_(counts.to(self.usage.dtype), alpha=1 / n)  # ~ the last n steps
            dead = (self.steps_since_used >= n) | (self.usage < self.config.dead_code_usage * self.usage.mean())
            if bool(dead.any()):  # the same on every rank: the counts are the whole batch's
                z = rows_of_every_rank(z)
                rows = torch.randint(0, z.shape[0], (int(dead.sum()),)).to(z.device)
                self._set_codes(dead, from_main(z[rows]))
                self.steps_since_used.masked_fill_(dead, 0)
                self.usage[dead] = self.usage.mean()  # a fresh code gets a fair trial

    def _set_codes(self, which: torch.Tensor, codes: torch.Tensor) -> None:
        raise NotImplementedError


class VectorQuantizer(_Quantizer):
    """The codebook learns from the codebook term of equation 3: ||sg[z_e] - e||^2."""

    def __init__(self, config: QuantizerConfig):
        super().__init__(config)
        self.embedding = nn.Parameter(uniform_codebook(config))  # (K, D)

    def _weight(self) -> torch.Tensor:
        return self.embedding

    def _codebook_loss(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(e, z.detach())

    def _set_codes(self, which: torch.Tensor, codes: torch.Tensor) -> None:
        self.embedding.data[which] = codes


class VectorQuantizerEMA(_Quantizer):
    """The codebook follows exponential moving averages of its assigned z_e (appendix A.1).

    N_i <- decay * N_i + (1 - decay) * n_i,  m_i <- decay * m_i + (1 - decay) * sum_{z -> i} z,
    e_i = m_i / N_i with N Laplace-smoothed: (N_i + eps) / (sum N + K eps) * sum N.
    The buffers move only in training mode; there is no codebook loss term.
    """

    def __init__(self, config: QuantizerConfig):
        super().__init__(config)
        k = config.num_embeddings
        codes = uniform_codebook(config)
        self.register_buffer("embedding", codes)  # (K, D)
        self.register_buffer("cluster_size", torch.ones(k))  # N, as if each code had seen one z
        self.register_buffer("embed_sum", codes.clone())  # m = e * N

    def _weight(self) -> torch.Tensor:
        return self.embedding

    def _codebook_loss(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return torch.zeros((), dtype=z.dtype)

    @torch.no_grad()
    def _learn(self, z: torch.Tensor, indices: torch.Tensor, counts: torch.Tensor) -> None:
        decay, eps, k = self.config.decay, self.config.epsilon, self.num_embeddings
        sums = sum_across_ranks(torch.zeros_like(self.embed_sum).index_add_(0, indices, z))  # (K, D), whole batch
        self.cluster_size.mul_(decay).add_(counts.to(z.dtype), alpha=1 - decay)
        self.embed_sum.mul_(decay).add_(sums, alpha=1 - decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (total + k * eps) * total
        self.embedding.copy_(self.embed_sum / smoothed[:, None])
        super()._learn(z, indices, counts)

    def _set_codes(self, which: torch.Tensor, codes: torch.Tensor) -> None:
        self.embedding[which] = codes
        self.embed_sum[which] = codes
        self.cluster_size[which] = 1.0


def make_quantizer(config: QuantizerConfig) -> _Quantizer:
    return VectorQuantizerEMA(config) if config.update == "ema" else VectorQuantizer(config)
