"""Small builders shared by the tests."""

import dataclasses

from vqvae.config import QuantizerConfig


def quantizer_config(**changes) -> QuantizerConfig:
    """K=16, D=4, uniform init: small enough to check by hand."""
    return dataclasses.replace(QuantizerConfig(num_embeddings=16, embedding_dim=4, init="uniform"), **changes)
