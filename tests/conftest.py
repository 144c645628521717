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


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium, launched once per test module (browser tests skip without it). Not once per
    session: playwright's event loop, running, would refuse the asyncio.run of later tests."""
    import shutil

    from tests.browser import CHROMIUM, FLAGS

    if not shutil.which(CHROMIUM):
        pytest.skip("needs Debian's chromium (scripts/test.sh installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, app_server):
    """A fresh tab on the app; afterwards, nothing it did reached outside or wrote to the console."""
    from tests.browser import open_page

    tab = open_page(browser, app_server.url)
    yield tab
    tab.context.close()
    assert tab.outside == [], tab.outside
    assert tab.console == [], tab.console


@pytest.fixture(scope="session")
def bare_checkpoint(app_server):
    """A run with no learned prior and no UMAP (digits-tiny, a few steps), in the app's picker as runs/no-prior."""
    import dataclasses

    from vqvae.jobs import Job, run

    chosen = preset("digits-tiny")
    train = dataclasses.replace(chosen.train, steps=30, minutes=None)
    run(Job(app_server.runs_dir / "no-prior", vqvae=chosen.vqvae, train=train, with_umap=False))
    return "runs/no-prior"


@pytest.fixture(scope="session")
def colour_run(tmp_path_factory):
    """A tiny 3-channel checkpoint on patches of two colour photographs, with long class names, a learned
    prior, its classifier and a PCA analysis (tests/colour_checkpoint.py): its folder."""
    from tests.colour_checkpoint import train_colour, write_patches

    root = tmp_path_factory.mktemp("colour")
    return train_colour(root / "colour", write_patches(root / "patches"))


@pytest.fixture(scope="session")
def colour_checkpoint(app_server, colour_run):
    """The colour checkpoint in the app's picker, as runs/colour."""
    import shutil

    shutil.copytree(colour_run, app_server.runs_dir / "colour")
    return "runs/colour"


@pytest.fixture(scope="session")
def levels_checkpoint(app_server):
    """A tiny VQ-VAE-2 (digits-tiny-2level: a 2x2 top grid over a 4x4 bottom grid) with a class-conditional
    prior per level, its classifier and a PCA analysis, in the app's picker as runs/levels."""
    import dataclasses

    from vqvae.config import prior_training
    from vqvae.jobs import Job, PriorJob, run

    chosen = preset("digits-tiny-2level")
    train = dataclasses.replace(chosen.train, steps=150, minutes=None)
    small = {"hidden_channels": 16, "embedding_dim": 16, "num_layers": 3}
    prior = PriorJob(prior_training("digits", steps=60), small, classifier_steps=100)
    run(Job(app_server.runs_dir / "levels", vqvae=chosen.vqvae, train=train, with_umap=False, prior=prior))
    return "runs/levels"
