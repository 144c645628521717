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


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The app on the shipped checkpoint, served on 127.0.0.1 for the whole session."""
    from tests.app_server import start

    server = start(tmp_path_factory.mktemp("app"))
    yield server
    server.demo.close()
