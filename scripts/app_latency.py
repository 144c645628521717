"""Measure the app as a user meets it: cold start to first served page, then each interactive
endpoint's latency through gradio_client (p50 / p95 over repeated calls), one call at a time.
Beside it, the same calls over Gradio's plain HTTP API (POST /gradio_api/call/NAME, then read the
event stream), which shows the server's own time without gradio_client's polling (its message
loop sleeps 50 ms at a time). The edit needs a session's state, so it has no HTTP figure.

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


def http_call(http, base: str, endpoint: str, data: tuple) -> None:
    """One call over the plain HTTP API; returns when the complete event arrives."""
    name = endpoint.lstrip("/")
    event = http.post(f"{base}gradio_api/call/{name}", json={"data": list(data)}).json()["event_id"]
    with http.stream("GET", f"{base}gradio_api/call/{name}/{event}") as stream:
        for line in stream.iter_lines():
            if line.startswith("event: error"):
                raise SystemExit(f"{endpoint} failed over HTTP")
            if line.startswith("event: complete"):
                return


def connect(client_class, port: int):
    """A gradio_client Client for the app on loopback. Plain http needs no certificates: with its
    default ssl_verify=True, gradio_client loads the CA bundle into two new httpx clients on every
    call, ~90 ms of the ~150 ms it adds to a call here (an echo endpoint: 160 ms median, 58 ms
    without). The server does the same work either way."""
    return client_class(f"http://127.0.0.1:{port}/", verbose=False, ssl_verify=False)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import httpx
    from gradio_client import Client

    port = free_port()
    process, cold_start_s = start_app(port)
    try:
        client = connect(Client, port)
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
            if endpoint == "/edit_code":
                continue
            with httpx.Client(timeout=60) as http:
                base = f"http://127.0.0.1:{port}/"
                times = []
                for i in range(args.repeats):
                    start = time.perf_counter()
                    http_call(http, base, endpoint, arguments(i + 1))
                    times.append(time.perf_counter() - start)
            results[name] |= {
                "http_p50_ms": round(1000 * statistics.median(times), 1),
                "http_p95_ms": round(1000 * percentile(times, 0.95), 1),
            }
    finally:
        process.terminate()
        process.wait(timeout=30)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"cold start to first served page: {results['cold_start_s']:.2f} s")
        for name in CALLS:
            r = results[name]
            line = f"{name:<22} gradio_client p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms"
            if "http_p50_ms" in r:
                line += f"   HTTP API p50 {r['http_p50_ms']:7.1f} ms  p95 {r['http_p95_ms']:7.1f} ms"
            print(line)


if __name__ == "__main__":
    main()
