"""Measure the app as a user meets it: cold start to first served page, the first answer, then
each interactive endpoint's latency through gradio_client (p50 / p95 over repeated calls), one
call at a time; the same calls from 10 clients at once; and the server's peak memory.

Beside the serial figures, the same calls over Gradio's plain HTTP API (POST
/gradio_api/call/NAME, then read the event stream): the server's own time without
gradio_client's polling (its message loop sleeps 50 ms at a time). The edit needs a session's
state, so it has no HTTP figure.

    python -m vqvae.bench.app [--repeats 40] [--clients 10] [--checkpoint checkpoints/emoji] [--json]

`python -m vqvae bench` runs it in a child process. It starts `python app.py` as a user would and
talks to it over loopback only: the library never imports the app.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKPOINT = "checkpoints/mnist"
Calls = dict[str, tuple[str, Callable[[int], tuple]]]


def calls(checkpoint: str = CHECKPOINT) -> Calls:
    """Endpoint -> arguments for a shipped checkpoint (as the picker names it); seeds and indices vary
    per call so no answer is a cached file, and stay within the checkpoint's held-out images, codes,
    grid and classes."""
    folder = ROOT / checkpoint
    config = json.loads((folder / "config.json").read_text())
    family = config.get("family", "vqvae")  # a VQ-VAE-2's calls are on its bottom level, the largest grid
    model, k = config[family]["model"], config[family]["quantizer"]["num_embeddings"]
    side = model["image_size"] // model["downsample"]
    heldout = json.loads((folder / "metrics.json").read_text())["images"]
    names = config["extra"]["class_names"]
    row, column = side // 2, side // 2
    level = ("bottom",) if family == "vqvae2" else (None,)  # every call that follows the level names it
    table = {
        "reconstruct": ("/reconstruct_heldout", lambda i: (checkpoint, i % heldout, *level)),
        "edit": ("/edit_code", lambda i: (checkpoint, row, column, (7 * i) % k, *level)),
        "per-code": (
            "/code_in_context",
            lambda i: (checkpoint, i % heldout, "one cell", 0, row, column, (11 * i) % k, *level),
        ),
        "sample 16 (3 priors)": ("/sample", lambda i: (checkpoint, names[i % len(names)], 1.0, 16, i)),
        "atlas select": ("/atlas_select", lambda i: (checkpoint, (13 * i) % k, *level)),
    }
    if family == "vqvae2":
        table["levels"] = ("/levels", lambda i: (checkpoint, i % heldout, (i + 1) % heldout, 1.0, i))
    return table


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(
    port: int, temp: Path | None = None, args: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen, float]]:
    """`start_app` for the body of a `with`, the app stopped at its end, however it ends."""
    process, seconds = start_app(port, temp, args)
    try:
        yield process, seconds
    finally:
        process.terminate()
        process.wait(timeout=30)


def start_app(port: int, temp: Path | None = None, args: tuple[str, ...] = ()) -> tuple[subprocess.Popen, float]:
    """`python app.py ARGS` on `port`, its Gradio temp folder `temp` (a new one if None); returns once it serves."""
    env = os.environ | {"GRADIO_TEMP_DIR": str(temp or tempfile.mkdtemp(prefix="vqvae-app-"))}
    start = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT, env=env,
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


def peak_memory_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux's VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serial_calls(client, port: int, repeats: int, table: Calls) -> dict:
    """Each endpoint in `names`, `repeats` calls one at a time: through gradio_client, then (but the
    edit, which needs a session's state) over the plain HTTP API."""
    import httpx

    results = {}
    for name, (endpoint, arguments) in table.items():
        if endpoint == "/edit_code":
            client.predict(*table["reconstruct"][1](1), api_name="/reconstruct_heldout")
        times = []
        for i in range(repeats):
            start = time.perf_counter()
            client.predict(*arguments(i + 1), api_name=endpoint)
            times.append(time.perf_counter() - start)
        results[name] = summary(times)
        if endpoint == "/edit_code":
            continue
        with httpx.Client(timeout=60) as http:
            base = f"http://127.0.0.1:{port}/"
            times = []
            for i in range(repeats):
                start = time.perf_counter()
                http_call(http, base, endpoint, arguments(i + 1))
                times.append(time.perf_counter() - start)
        results[name] |= {
            "http_p50_ms": round(1000 * statistics.median(times), 1),
            "http_p95_ms": round(1000 * percentile(times, 0.95), 1),
        }
    return results


def print_serial(results: dict, table: Calls) -> None:
    for name in table:
        if name not in results:
            continue
        r = results[name]
        line = f"{name:<22} gradio_client p50 {r['p50_ms']:7.1f} ms  p95 {r['p95_ms']:7.1f} ms"
        if "http_p50_ms" in r:
            line += f"   HTTP API p50 {r['http_p50_ms']:7.1f} ms  p95 {r['http_p95_ms']:7.1f} ms"
        print(line)


def concurrent_calls(client_class, port: int, clients: int, rounds: int, table: Calls) -> dict:
    """`clients` clients at once, each calling every endpoint `rounds` times in its own order."""
    connected = [connect(client_class, port) for _ in range(clients)]
    for c in connected:
        c.predict(*table["reconstruct"][1](1), api_name="/reconstruct_heldout")  # each session has a grid to edit
    names = list(table)
    times: dict[str, list[float]] = {name: [] for name in names}
    failures: list[str] = []
    start_together = threading.Barrier(clients)

    def work(number: int, client) -> None:
        start_together.wait()
        for r in range(rounds):
            for name in names[number % len(names) :] + names[: number % len(names)]:
                endpoint, arguments = table[name]
                start = time.perf_counter()
                try:
                    client.predict(*arguments(1000 * number + r), api_name=endpoint)
                except Exception as error:  # counted and reported, never hidden
                    failures.append(f"{name}: {type(error).__name__}: {error}")
                    continue
                times[name].append(time.perf_counter() - start)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(connected)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    every = [t for name in names for t in times[name]]
    result = {name: summary(times[name]) for name in names}
    return result | {
        "clients": clients,
        "calls": len(every),
        "failures": len(failures),
        "failure_examples": failures[:3],
        "calls_per_s": round(len(every) / wall, 1),
        "all": summary(every),
    }


def summary(times: list[float]) -> dict:
    if not times:
        return {}
    return {"p50_ms": round(1000 * statistics.median(times), 1), "p95_ms": round(1000 * percentile(times, 0.95), 1)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="serial calls per endpoint")
    parser.add_argument("--clients", type=int, default=10, help="simultaneous clients (0: skip)")
    parser.add_argument("--rounds", type=int, default=4, help="calls per endpoint per simultaneous client")
    parser.add_argument("--checkpoint", default=CHECKPOINT, help=f"a shipped checkpoint [default: {CHECKPOINT}]")
    parser.add_argument("--device", help="where the app's models compute (app.py --device) [default: the app's own]")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    table = calls(args.checkpoint)
    from gradio_client import Client

    port = free_port()
    began = time.perf_counter()
    app_args = ("--device", args.device) if args.device else ()
    with serving(port, args=app_args) as (process, cold_start_s):
        client = connect(Client, port)
        client.predict(*table["reconstruct"][1](0), api_name="/reconstruct_heldout")  # waits for its loading
        results = {"cold_start_s": round(cold_start_s, 3), "first_answer_s": round(time.perf_counter() - began, 3)}
        results |= serial_calls(client, port, args.repeats, table)
        if args.clients:
            results["concurrent"] = concurrent_calls(Client, port, args.clients, args.rounds, table)
        results["peak_memory_mb"] = round(peak_memory_mb(process.pid), 1)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"cold start to first served page: {results['cold_start_s']:.2f} s")
        print(f"first answer (a reconstruction, the checkpoint loaded): {results['first_answer_s']:.2f} s")
        print_serial(results, table)
        if "concurrent" in results:
            c = results["concurrent"]
            print(
                f"{c['clients']} clients at once: {c['calls']} calls, {c['failures']} failed,"
                f" {c['calls_per_s']} calls/s; all p50 {c['all']['p50_ms']} ms, p95 {c['all']['p95_ms']} ms"
            )
            for name in table:
                print(f"  {name:<22} p50 {c[name].get('p50_ms')} ms  p95 {c[name].get('p95_ms')} ms")
        print(f"server peak memory: {results['peak_memory_mb']:.0f} MB")


if __name__ == "__main__":
    main()
