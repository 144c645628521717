"""The real app, launched once per test session on a free loopback port (shared by the API and browser tests)."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

SHIPPED = "checkpoints/mnist"


@dataclass
class Server:
    url: str
    runs_dir: Path
    demo: object


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(tmp: Path) -> Server:
    os.environ["GRADIO_TEMP_DIR"] = str(tmp / "gradio")
    import app  # after GRADIO_TEMP_DIR is set

    runs_dir = tmp / "runs"
    runs_dir.mkdir()
    demo = app.build_app(SHIPPED, roots=(app.ROOT / "checkpoints", runs_dir), runs_dir=runs_dir)
    port = free_port()
    app.launch(demo, "127.0.0.1", port, block=False)
    return Server(f"http://127.0.0.1:{port}/", runs_dir, demo)
