"""The app served where others can reach it: refused when left open, a public demo without training,
and a login in front of everything."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

import app
from tests.app_server import SHIPPED, free_port
from vqvae.app.exposure import Exposure

TRAINING_ENDPOINTS = {"start_training", "stop_training", "training_status"}


def api_names(demo) -> set[str]:
    return {fn.api_name for fn in demo.fns.values() if fn.api_name}


def test_a_reachable_host_without_public_or_a_login_does_not_start():
    done = subprocess.run(
        [sys.executable, "app.py", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=app.ROOT, capture_output=True, text=True, timeout=120,
        env={k: v for k, v in __import__("os").environ.items() if k not in ("VQVAE_PUBLIC", "VQVAE_AUTH")},
    )  # fmt: skip
    assert done.returncode != 0
    assert "--host 0.0.0.0 makes the app reachable" in done.stderr and "--public" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_public_demo_has_no_training_endpoint_and_says_why(tmp_path):
    public = app.build_app(SHIPPED, runs_dir=tmp_path / "runs", exposure=Exposure(public=True))
    assert not api_names(public) & TRAINING_ENDPOINTS
    assert {"reconstruct_heldout", "sample"} <= api_names(public)
    texts = [block.value for block in public.blocks.values() if type(block).__name__ == "Markdown"]
    assert any("Training is off in this public demo" in (text or "") for text in texts)
    local = app.build_app(SHIPPED, runs_dir=tmp_path / "runs")
    assert TRAINING_ENDPOINTS <= api_names(local)


@pytest.fixture
def behind_a_login(tmp_path):
    demo = app.build_app(SHIPPED, runs_dir=tmp_path / "runs", exposure=Exposure(login=("teacher", "s3cret")))
    port = free_port()
    app.launch(demo, "127.0.0.1", port, block=False, login=("teacher", "s3cret"))
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def test_a_login_stands_in_front_of_every_call(behind_a_login):
    base = behind_a_login
    with httpx.Client(timeout=30) as anonymous:
        assert anonymous.get(f"{base}config").status_code == 401
        call = anonymous.post(f"{base}gradio_api/call/reconstruct_heldout", json={"data": [SHIPPED, 1]})
        assert call.status_code == 401
    with httpx.Client(timeout=30) as teacher:
        wrong = teacher.post(f"{base}login", data={"username": "teacher", "password": "guess"})
        assert wrong.status_code == 400
        assert teacher.post(f"{base}login", data={"username": "teacher", "password": "s3cret"}).status_code == 200
        assert teacher.get(f"{base}config").status_code == 200
