import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from vqvae.config import preset  # noqa: E402


@pytest.fixture
def tiny():
    """The digits-tiny preset: a few channels on 8x8 digits, a few steps."""
    return preset("digits-tiny")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
