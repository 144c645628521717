"""The app served where others can reach it: refused when left open, a public demo without training,
and a login in front of everything."""

from __future__ import annotations

import subprocess
import sys
import time

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


def logged_in(base: str) -> httpx.Client:
    http = httpx.Client(timeout=120)
    assert http.post(f"{base}login", data={"username": "teacher", "password": "s3cret"}).status_code == 200
    return http


def api(http: httpx.Client, base: str, name: str, data: list) -> str:
    """A call over the plain API: "complete: ..." or "error: ...", with the answer's data."""
    event = http.post(f"{base}gradio_api/call/{name}", json={"data": data}).json()["event_id"]
    answer = http.get(f"{base}gradio_api/call/{name}/{event}").text
    kind = "complete" if "event: complete" in answer else "error"
    return f"{kind}: {answer.rpartition('data: ')[2].strip()}"


def test_behind_a_login_only_the_browser_that_started_a_run_can_stop_it(behind_a_login):
    base = behind_a_login
    alice, bob = logged_in(base), logged_in(base)
    try:
        started = api(alice, base, "start_training", ["alices-run", "digits-tiny", "digits", 5, 32, 8, 3e-3, 0, "a1"])
        assert started.startswith("complete") and "alices-run" in started
        refused = api(bob, base, "stop_training", ["b2"])
        assert refused.startswith("error") and "started by another visitor; only they can stop it" in refused
        assert api(bob, base, "stop_training", [""]).startswith("error")  # no token is no one's
        assert "only they can stop it" in api(bob, base, "training_status", ["b2"])
        assert "running" in api(alice, base, "training_status", ["a1"])
        assert "stopping after the current step" in api(alice, base, "stop_training", ["a1"])
        deadline = time.monotonic() + 180
        while ": stopping" in api(alice, base, "training_status", ["a1"]) and time.monotonic() < deadline:
            time.sleep(1)
        assert "stopped" in api(alice, base, "training_status", ["a1"])
    finally:
        alice.close(), bob.close()
