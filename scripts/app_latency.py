"""Measure the app as a user meets it: cold start to first served page, then each interactive
endpoint's latency through gradio_client (p50 / p95 over repeated calls), one call at a time.

    python scripts/app_latency.py [--repeats 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = "checkpoints/mnist"
CALLS = {  # endpoint -> arguments; seeds and indices vary per call so no answer is a cached file
    "reconstruct": ("/reconstruct_heldout", lambda i: (CHECKPOINT, i % 500)),
    "edit": ("/edit_code", lambda i: (CHECKPOINT, 3, 3, (7 * i) % 512)),
    "per-code": ("/code_in_context", lambda i: (CHECKPOINT, i % 500, "one cell", 0, 3, 3, (11 * i) % 512)),
    "sample 16 (3 priors)": ("/sample", lambda i: (CHECKPOINT, str(i % 10), 1.0, 16, i)),
    "atlas select": ("/atlas_select", lambda i: (CHECKPOINT, (13 * i) % 512)),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int) -> tuple[subprocess.Popen, float]:
    env = os.environ | {"GRADIO_TEMP_DIR": tempfile.mkdtemp(prefix="vqvae-app-")}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return process, time.perf_counter() - start
        except OSError:
            if process.poll() is not None:
                raise SystemExit("the app exited before serving") from None
            time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from gradio_client import Client

    port = free_port()
    process, cold_start_s = start_app(port)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(CHECKPOINT, 0, api_name="/reconstruct_heldout")  # loads the checkpoint once
        results = {"cold_start_s": round(cold_start_s, 3)}
        for name, (endpoint, arguments) in CALLS.items():
            if endpoint == "/edit_code":
                client.predict(CHECKPOINT, 1, api_name="/reconstruct_heldout")
            times = []
            for i in range(args.repeats):
                start = time.perf_counter()
                client.predict(*arguments(i + 1), api_name=endpoint)
                times.append(time.perf_counter() - start)
            results[name] = {
                "p50_ms": round(1000 * statistics.median(times), 1),
                "p95_ms": round(1000 * percentile(times, 0.95), 1),
            }
    finally:
        process.terminate()
        process.wait(timeout=30)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"cold start to first served page: {results['cold_start_s']:.2f} s")
        for name in CALLS:
            print(f"{name:<22} p50 {results[name]['p50_ms']:7.1f} ms   p95 {results[name]['p95_ms']:7.1f} ms")


if __name__ == "__main__":
    main()
