"""The launched app's HTTP surface: no file outside what it made is served, and a broken checkpoint
folder is refused with our message while the checkpoint in use keeps answering."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

import app
from tests.app_server import SHIPPED

ROOT = Path(__file__).resolve().parent.parent
SECRET = "vqvae-explorer-test-secret-3f9a1c"
FILES = ("config.json", "vqvae.safetensors", "prior.safetensors", "codes.safetensors", "analysis.safetensors")


@pytest.fixture(scope="module")
def client(app_server):
    return Client(app_server.url, verbose=False)


@pytest.fixture(scope="module")
def secrets(app_server):
    """A secret in each place a file route must not reach: the repository's .env, the runs folder, a
    checkpoint folder, and files of other apps' Gradio temp folders (the shared default, and a
    developer's run of this app beside the tests). Gradio 6 serves every file in the app's *own* temp
    folder (named by content hashes), so the app keeps one of its own and cleans it."""
    own = Path(os.environ["GRADIO_TEMP_DIR"]).resolve()
    temp = Path(tempfile.gettempdir()) / "gradio" / "0123456789abcdef" / "other-session.txt"
    places = {
        "dev-temp": app.TEMP / "0123456789abcdef" / "other-run.txt",
        "env": ROOT / ".env",
        "runs": app_server.runs_dir / "secret.txt",
        "temp": temp,
        "checkpoint": ROOT / "checkpoints" / "secret.txt",
    }
    made = []
    for path in places.values():
        if not path.exists():  # a developer's own .env is never touched, only probed
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"TOKEN={SECRET}\n")
            made.append(path)
    assert not any(path.resolve().is_relative_to(own) for path in places.values())
    yield places
    for path in made:
        path.unlink()


def fetch(app_server, route: str) -> httpx.Response:
    return httpx.get(app_server.url.rstrip("/") + route, follow_redirects=False, timeout=10)


def routes(places: dict[str, Path]) -> list[str]:
    env, runs, temp, shipped = places["env"], places["runs"], places["temp"], ROOT / SHIPPED
    paths = [
        ".env",
        str(env),
        "../" * 12 + str(env).lstrip("/"),
        str(runs),
        str(temp),
        str(places["checkpoint"]),
        str(places["dev-temp"]),
        str(shipped / "config.json"),
        str(shipped / "vqvae.safetensors"),
        "checkpoints/mnist/vqvae.safetensors",
        "app.py",
        str(ROOT / "app.py"),
        "/proc/self/environ",
        "/etc/passwd",
    ]
    found = []
    for path in paths:
        found += [f"/gradio_api/file={path}", f"/gradio_api/file={quote(path, safe='')}", f"/gradio_api/file/{path}"]
    found += [
        "/gradio_api/file=%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/gradio_api/file=..%2f..%2f..%2f..%2f..%2fproc%2fself%2fenviron",
        "/gradio_api/file=" + quote(str(temp.parent.parent / ".." / temp.parent.parent.name / "x" / ".." / temp.name)),
        "/static/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/assets/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/assets/" + quote("../" * 8 + str(env).lstrip("/"), safe=""),
        "/svelte/..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd",
        "/gradio_api/proxy=http://169.254.169.254/latest/meta-data/",
        "/gradio_api/proxy=http://127.0.0.1:1/",
        "/gradio_api/file=http://169.254.169.254/latest/meta-data/",
        "/gradio_api/file=http://127.0.0.1:22/",
        "/gradio_api/file=http://localhost/etc/passwd",
        "/gradio_api/file=file:///etc/passwd",
        "/monitoring",
        "/monitoring/summary",
        "/gradio_api/vibe-code",
    ]
    return found


def test_no_route_serves_a_file_the_app_did_not_make(app_server, secrets):
    passwd = Path("/etc/passwd").read_text()[:40]
    environ = Path("/proc/self/environ").read_bytes()[:40]
    shipped_weights = (ROOT / SHIPPED / "vqvae.safetensors").read_bytes()[:64]
    app_source = (ROOT / "app.py").read_text()[:80]
    served = []
    for route in routes(secrets):
        response = fetch(app_server, route)
        body = response.content
        print(f"{response.status_code} {route}")
        leaked = (
            SECRET.encode() in body
            or passwd.encode() in body
            or environ in body
            or shipped_weights in body
            or app_source.encode() in body
        )
        if leaked or response.status_code == 200:
            served.append((route, response.status_code))
    assert served == []


def test_a_file_the_app_was_given_is_still_served(app_server):
    """The refusals above are not the route being broken: an upload comes back from the same route."""
    image = b"GIF89a" + bytes(32)  # the uploads take images only
    upload = httpx.post(app_server.url + "gradio_api/upload", files={"files": ("note.gif", image)}, timeout=10)
    assert upload.status_code == 200
    response = fetch(app_server, f"/gradio_api/file={upload.json()[0]}")
    assert response.status_code == 200 and response.content == image


# --- a broken checkpoint folder ------------------------------------------------------------------


@pytest.fixture
def copy(app_server):
    """A good checkpoint folder in the app's runs root, listed by its picker; removed afterwards."""
    folder = app_server.runs_dir / "safety-copy"
    folder.mkdir()
    for name in FILES:
        shutil.copy2(ROOT / SHIPPED / name, folder / name)
    yield folder
    shutil.rmtree(folder)


def choice(folder: Path) -> str:
    return f"{folder.parent.name}/{folder.name}"  # as the picker names a folder outside the repository


def heldout_psnr(client, checkpoint: str) -> str:
    return client.predict(checkpoint, 0, api_name="/reconstruct_heldout")[3]


def test_a_broken_folder_is_refused_and_the_shipped_one_keeps_answering(client, copy):
    (copy / "vqvae.safetensors").write_bytes(b"\x80\x04not really a pickle")
    before = heldout_psnr(client, SHIPPED)
    with pytest.raises(AppError, match="vqvae.safetensors is a pickle"):
        heldout_psnr(client, choice(copy))
    assert heldout_psnr(client, SHIPPED) == before


def test_a_folder_broken_while_in_use_is_refused_until_mended(client, copy):
    good = (copy / "vqvae.safetensors").read_bytes()
    answer = heldout_psnr(client, choice(copy))
    assert answer.startswith("**PSNR**")
    (copy / "vqvae.safetensors").write_bytes(good[: len(good) // 3])  # replaced while the app runs
    for _ in range(2):
        with pytest.raises(AppError, match="vqvae.safetensors is not a valid safetensors file"):
            heldout_psnr(client, choice(copy))
    assert heldout_psnr(client, SHIPPED).startswith("**PSNR**")
    (copy / "vqvae.safetensors").write_bytes(good)
    assert heldout_psnr(client, choice(copy)) == answer
