"""The app ended by SIGTERM (a service manager, `kill`) ends as Ctrl-C ends it: the server closes, a run
still training is stopped and removed, and nothing the run held is left to the system."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from gradio_client import Client

import app
from tests.app_server import free_port


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_sigterm_closes_the_app_and_the_run_it_was_training(tmp_path):
    port, runs = free_port(), tmp_path / "runs"
    env = os.environ | {"GRADIO_TEMP_DIR": str(tmp_path / "gradio")}
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--runs-dir", str(runs)],
        cwd=app.ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: answers(url), 120, "the app to answer")
        client = Client(url, verbose=False, ssl_verify=False)
        client.predict("ended", "digits-tiny", "digits", 5, 32, 8, 3e-3, 0, "", api_name="/start_training")
        wait_until(lambda: "step" in client.predict("", api_name="/training_status")[0], 60, "the run to train")
        assert (runs / ".ended.partial").is_dir()
        children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
        assert children  # the training process (and multiprocessing's resource tracker)
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode == 0, stderr
    assert "leaked semaphore" not in stderr and "Traceback" not in stderr, stderr
    assert not (runs / ".ended.partial").exists() and not (runs / "ended").exists()  # stopped at once, removed
    wait_until(lambda: not any(alive(int(pid)) for pid in children), 10, "the app's processes to end")


def alive(pid: int) -> bool:
    """Running still (an ended process nobody has reaped yet is not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False
