"""The app's interactive latency while a training run goes on beside it.

Launches `python app.py`, measures reconstruct and sample one call at a time (as
app_latency.py: gradio_client, then the plain HTTP API), then starts a training run from the
Training page's endpoint (the mnist preset on mnist5k, no prior) and, once it is stepping,
measures the same again. The run trains in a child process (vqvae/runs.py); its thread count
and niceness are read from /proc. The run is stopped and its folder under runs/ removed at
the end. Targets: p95 <= 300 ms (ideally <= 150 ms).

    python scripts/latency_while_training.py [--repeats 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for vqvae

from vqvae.bench.app import CHECKPOINT, ROOT, connect, free_port, print_serial, serial_calls, serving  # noqa: E402

NAMES = ["reconstruct", "sample 16 (3 priors)"]
RUN_MINUTES = 3.0  # longer than the measurement: it is stopped once that is done
STEP = re.compile(r"vqvae phase, step (\d+)")


def training_step(client) -> int | None:
    """The run's step while it trains the VQ-VAE, else None."""
    summary = client.predict("", api_name="/training_status")[0]
    found = STEP.search(summary) if "running" in summary else None
    return int(found.group(1)) if found else None


def training_process(server: int) -> int | None:
    """The server's spawned child that trains (not multiprocessing's resource tracker)."""
    for task in Path(f"/proc/{server}/task").iterdir():
        for child in (task / "children").read_text().split():
            command = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"spawn_main" in command and b"resource_tracker" not in command:
                return int(child)
    return None


def threads_and_nice(pid: int) -> dict:
    threads = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("Threads:"))  # fmt: skip
    nice = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
    return {"threads": threads, "nice": nice}


def train_beside(client, server_pid: int, repeats: int, port: int) -> dict:
    name = f"latency-check-{os.getpid()}"
    client.predict(name, "mnist", "mnist5k", RUN_MINUTES, 512, 64, 3e-3, 0, "", api_name="/start_training")
    try:
        deadline = time.monotonic() + 120
        while (training_step(client) or 0) < 1:  # the child has imported torch and is stepping
            if time.monotonic() > deadline:
                raise SystemExit("the training run did not start stepping within 2 minutes")
            time.sleep(0.5)
        first = training_step(client)
        child = training_process(server_pid)
        figures = serial_calls(client, port, repeats, NAMES)
        last = training_step(client)
        if last is None:
            raise SystemExit("the training run ended before the measurement did")
        return figures | {"steps_meanwhile": last - first, "child": threads_and_nice(child) if child else {}}
    finally:
        client.predict("", api_name="/stop_training")
        deadline = time.monotonic() + 180
        while "running" in client.predict("", api_name="/training_status")[0] and time.monotonic() < deadline:
            time.sleep(1)
        shutil.rmtree(ROOT / "runs" / name, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40, help="serial calls per endpoint")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from gradio_client import Client

    port = free_port()
    with serving(port) as (process, _):
        client = connect(Client, port)
        client.predict(CHECKPOINT, 0, api_name="/reconstruct_heldout")  # the checkpoint loaded
        results = {"idle": serial_calls(client, port, args.repeats, NAMES)}
        results["training"] = train_beside(client, process.pid, args.repeats, port)
    if args.json:
        print(json.dumps(results))
        return
    print("without a training run:")
    print_serial(results["idle"])
    training = results["training"]
    print(f"while a run trains ({training['steps_meanwhile']} steps meanwhile; its process: {training['child']}):")
    print_serial(training)


if __name__ == "__main__":
    main()
