"""What a failing call tells the browser and API clients: our own errors in our words; anything
unexpected as a short note naming no file, value or traceback (show_error is off)."""

from __future__ import annotations

import json

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from pages.common import HELDOUT_LAST, Shared
from tests.app_server import SHIPPED

SECRET = "/srv/secret/weights-9f3e.safetensors"
LEAKS = ("Traceback", 'File "', SECRET, "/work/", ".py")


def error_event(app_server, name: str, data: list) -> str:
    """The data of the error event a plain API call ends with."""
    base = f"{app_server.url}gradio_api/call/{name}"
    event = httpx.post(base, json={"data": data}, timeout=30).json()["event_id"]
    text = httpx.get(f"{base}/{event}", timeout=60).text
    assert "event: error" in text, text[:300]
    return text.split("event: error", 1)[1].split("data:", 1)[1].strip()


@pytest.fixture
def broken_explorer(monkeypatch):
    """Opening any checkpoint fails as a bug would, with a path in its message."""

    def explode(self, choice, level=None):
        raise RuntimeError(f"could not map {SECRET}")

    monkeypatch.setattr(Shared, "explorer", explode)


def test_an_unexpected_error_in_a_callback_shows_a_short_note_and_no_details(app_server, broken_explorer):
    shown = json.loads(error_event(app_server, "reconstruct_heldout", [SHIPPED, 3, None]))["error"]
    assert shown == "reconstruct_heldout failed unexpectedly (RuntimeError); see the server log"
    with pytest.raises(AppError) as raised:
        Client(app_server.url, verbose=False).predict(SHIPPED, "7", 1.0, 0, api_name="/sample_steps")
    assert "failed unexpectedly (RuntimeError)" in str(raised.value)
    assert not any(leak in str(raised.value) for leak in LEAKS)


@pytest.mark.parametrize(
    "name, data",
    [
        ("reconstruct_heldout", [SHIPPED, "not a number"]),
        ("edit_code", [SHIPPED, {"row": SECRET}, 3, 5]),
        ("reconstruct_upload", [SHIPPED, {"path": SECRET, "meta": {"_type": "gradio.FileData"}}]),
        ("reconstruct_heldout", [SHIPPED]),
    ],
)
def test_an_error_before_our_code_runs_shows_nothing_of_it(app_server, name, data):
    """Gradio itself fails on these values before a callback is called: the client hears that the
    call failed, and nothing else."""
    shown = error_event(app_server, name, data)
    assert json.loads(shown)["error"] is None
    assert not any(leak in shown for leak in LEAKS)


@pytest.mark.parametrize(
    "name, data, message",
    [
        ("sample", [SHIPPED, "eleven", 1.0, 16, 0], "class 'eleven' does not exist"),
        ("reconstruct_heldout", ["/etc", 0, None], "not one of the checkpoints"),
        ("reconstruct_heldout", [SHIPPED, 10**6, None], f"greater than maximum value {HELDOUT_LAST}"),  # from Gradio
    ],
)
def test_our_own_errors_are_shown_in_our_words(app_server, name, data, message):
    shown = json.loads(error_event(app_server, name, data))["error"]
    assert message in shown and not any(leak in shown for leak in LEAKS[:3])
