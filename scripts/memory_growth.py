"""Does the server grow with use? Visitors, each a new session, make the app's interactive calls
in turn (a held-out reconstruction, an edit of one of its codes, a code in context, an atlas
selection, 16 samples); the server's resident memory and the files in its Gradio temp folder are
read after `--first` calls and again at `--total`. Target: memory at the end within 10% of
memory after the first 100 calls.

    python scripts/memory_growth.py [--first 100] [--total 1000] [--at-once 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for vqvae

from queue_client import call, endpoints, new_session  # noqa: E402

from vqvae.bench.app import CHECKPOINT, free_port, serving  # noqa: E402

VISIT = (  # endpoint -> arguments for visitor i; each visitor's edit follows its own reconstruction
    ("/reconstruct_heldout", lambda i: [CHECKPOINT, i % 500]),
    ("/edit_code", lambda i: [CHECKPOINT, 3, 3, (7 * i) % 512]),
    ("/code_in_context", lambda i: [CHECKPOINT, i % 500, "one cell", 0, 3, 3, (11 * i) % 512]),
    ("/atlas_select", lambda i: [CHECKPOINT, (13 * i) % 512]),
    ("/sample", lambda i: [CHECKPOINT, str(i % 10), 1.0, 16, i]),
)
TARGET = 0.10  # growth allowed between the two readings


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def files_under(folder: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


async def visitors(base: str, at_once: int, visits: range, failures: list[str]) -> None:
    """Each visit a new session making the VISIT calls in order; `at_once` visitors at a time."""
    fn = endpoints(base)
    numbers = iter(visits)

    async def visitor(http: httpx.AsyncClient) -> None:
        for number in numbers:
            session = new_session()
            for endpoint, arguments in VISIT:
                outcome = await call(http, base, fn[endpoint], arguments(number), session)
                if outcome.kind != "answered":
                    failures.append(f"{endpoint}: {outcome.kind} {outcome.note}")

    async with httpx.AsyncClient() as http:
        await asyncio.gather(*(visitor(http) for _ in range(at_once)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=100, help="calls before the first reading")
    parser.add_argument("--total", type=int, default=1000, help="calls before the last reading")
    parser.add_argument("--at-once", type=int, default=2, help="visitors at a time (the model's two places)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    temp = Path(tempfile.mkdtemp(prefix="vqvae-app-"))
    failures: list[str] = []
    readings = []
    visits = len(VISIT)
    step = max(visits, (args.total - args.first) // 4 // visits * visits)  # four readings after the first
    with serving(port, temp) as (process, _):
        began, done = time.perf_counter(), 0
        for calls in sorted({*range(args.first, args.total, step), args.total}):
            asyncio.run(visitors(base, args.at_once, range(done // visits, calls // visits), failures))
            done = calls // visits * visits
            rss, seconds = round(resident_mb(process.pid), 1), round(time.perf_counter() - began, 1)
            readings.append({"calls": done, "rss_mb": rss, "temp_files": files_under(temp), "seconds": seconds})
    first, last = readings[0], readings[-1]
    growth = last["rss_mb"] / first["rss_mb"] - 1
    results = {"readings": readings, "growth": round(growth, 3), "target": TARGET, "failures": len(failures),
               "failure_examples": failures[:3]}  # fmt: skip
    if args.json:
        print(json.dumps(results))
        return
    for r in readings:
        rss, files = r["rss_mb"], r["temp_files"]
        print(f"after {r['calls']:>5} calls ({r['seconds']:6.1f} s): RSS {rss:7.1f} MB, {files} temp files")
    verdict = "within" if growth <= TARGET else "OVER"
    print(f"growth {100 * growth:+.1f}% from {first['calls']} to {last['calls']} calls ({verdict} {100 * TARGET:.0f}%);"
          f" {len(failures)} failed")  # fmt: skip
    for example in failures[:3]:
        print(f"     failure: {example}")


if __name__ == "__main__":
    main()
