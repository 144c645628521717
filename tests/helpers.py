"""Small builders shared by the tests."""

import dataclasses
from pathlib import Path

from vqvae.config import QuantizerConfig


def quantizer_config(**changes) -> QuantizerConfig:
    """K=16, D=4, uniform init: small enough to check by hand."""
    return dataclasses.replace(QuantizerConfig(num_embeddings=16, embedding_dim=4, init="uniform"), **changes)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of the folder (temp files included) and its bytes."""
    return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir())}
