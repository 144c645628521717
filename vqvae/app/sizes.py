"""What a run's checkpoint files will weigh, from its configs alone (no torch), so that the app
refuses, before a process starts, a run whose checkpoint it could never load.

The sums follow the modules layer by layer (model.py, quantizer.py, prior/network.py); tests
check them against the real modules' tensors.
"""

from __future__ import annotations

import math

from ..config import PriorConfig, VQVAEConfig
from ..files import MAX_FILE_BYTES as LOAD_LIMIT  # the largest weights file checkpoint.py loads

# K: memory grows with K squared (the analysis's code-to-code distances) and with K per latent (the
# prior's logits): an mnist run at this K mapped 5.9 GB at its peak, within run_child.MEMORY_LIMIT
MAX_CODES = 16384
MAX_CODEBOOK_VALUES = 2**20  # K x D: 4 MiB a copy in float32, 32 times the paper's K 512 x D 64
HEADER_BYTES = 64 * 1024  # a safetensors header (names, dtypes, shapes): a few KB for these modules


def check_loadable(config: VQVAEConfig, with_prior: bool) -> None:
    """Refuse (ValueError) a codebook beyond the caps above, or files the app could not load."""
    q = config.quantizer
    files = {"vqvae.safetensors": vqvae_file_bytes(config)}
    if with_prior:  # the app's prior: PriorConfig's defaults; one class bias per label comes on top
        h, w = config.latent_shape
        files["prior.safetensors"] = prior_file_bytes(PriorConfig(q.num_embeddings, h, w))
    for name, size in files.items():
        if size > LOAD_LIMIT:
            raise ValueError(
                f"its {name} would be about {size / 1024**2:,.0f} MB, more than the "
                f"{LOAD_LIMIT / 1024**2:,.0f} MB a checkpoint file may be to load; choose a smaller K or D"
            )
    if q.num_embeddings > MAX_CODES:
        raise ValueError(f"num_embeddings (K) must be at most {MAX_CODES:,} for a run started here")
    if q.num_embeddings * q.embedding_dim > MAX_CODEBOOK_VALUES:
        raise ValueError(
            f"a codebook of K x D = {q.num_embeddings * q.embedding_dim:,} values is more than the "
            f"{MAX_CODEBOOK_VALUES:,} a run started here may train (K 16384 x D 64, or K 1024 x D 1024)"
        )


def _conv(c_in: int, c_out: int, kh: int, kw: int | None = None, bias: bool = True) -> int:
    """Parameters of a (transposed) convolution."""
    return c_in * c_out * kh * (kh if kw is None else kw) + (c_out if bias else 0)


def vqvae_file_bytes(config: VQVAEConfig) -> int:
    """The size of vqvae.safetensors for `config`: model.py's layers and quantizer.py's codebook and
    buffers, float32 but the int64 unused-step counters, plus the header."""
    m, q = config.model, config.quantizer
    k, d, h, r = q.num_embeddings, q.embedding_dim, m.hidden_channels, m.residual_channels
    widths = [m.in_channels] + [h // 2] * (int(math.log2(m.downsample)) - 1) + [h]
    strided = sum(_conv(a, b, 4) + _conv(b, a, 4) for a, b in zip(widths[:-1], widths[1:]))  # and mirrored
    residual = m.num_residual_blocks * (_conv(h, r, 3) + _conv(r, h, 1))
    layers = strided + 2 * residual + _conv(h, h, 3) + _conv(h, d, 1) + _conv(d, h, 3)
    codebook = k * d * (2 if q.update == "ema" else 1) + (k if q.update == "ema" else 0)  # e; EMA: m and N
    floats = layers + codebook + k  # and each code's running usage
    return 4 * floats + 8 * k + 1 + HEADER_BYTES  # steps since each code was used; "initialised"


def prior_file_bytes(config: PriorConfig) -> int:
    """The size of prior.safetensors for `config`: prior/network.py's layers, float32, plus the header."""
    c, k, reach = config.hidden_channels, config.kernel_size, config.kernel_size // 2
    conditions = 2 * (config.num_classes * 2 * c + _conv(config.condition_channels, 2 * c, 1, bias=False))
    layers = sum(
        _conv(width, 2 * c, reach + 1, k)
        + _conv(width, 2 * c, 1, reach + 1)
        + _conv(2 * c, 2 * c, 1)
        + _conv(c, 2 * c, 1)
        + conditions
        for width in [config.embedding_dim] + [c] * (config.num_layers - 1)
    )
    head = _conv(c, c, 1) + _conv(c, config.num_embeddings, 1)
    return 4 * (config.num_embeddings * config.embedding_dim + layers + head) + HEADER_BYTES
