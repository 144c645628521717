"""Load test on loopback: many clients at once doing reconstruct and sample, bounded and self-ending.

Launches `python app.py` on a free port of 127.0.0.1, then for each crowd size starts that many
clients together; each makes `--calls` calls, alternating a held-out reconstruction and 16
samples from the three priors. Every call either answers, or is refused by the bounded queue
(503, "queue full"); anything else (an error reply, a 500, a timeout) is counted as a failure.

Two kinds of crowd (`--kind`):
  http    the clients are coroutines on one event loop speaking the queue's protocol
          (queue_client.py): next to no client work, so the times are the server's.
  gradio  one gradio_client Client per thread, as a Python user would: its times include the
          client's own work, which on a small machine competes with the server for the cores.
Reports, per crowd: answered, refused, failed, the join's HTTP statuses, throughput, p50/p95 of
the answers and of the refusals (whole calls, as the client met them; for http also the
server's own time, from the join sent to its answer), and one call's time once the crowd has
gone (the server recovered); then the server's peak memory.

    python scripts/load_test.py [--clients 25 100] [--calls 4] [--kind http gradio] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for vqvae

from queue_client import CALL_TIMEOUT_S, Outcome, call, endpoints, new_session  # noqa: E402

from vqvae.bench.app import CHECKPOINT, connect, free_port, peak_memory_mb, serving, summary  # noqa: E402

WORK = (
    ("/reconstruct_heldout", lambda i: [CHECKPOINT, i % 500]),
    ("/sample", lambda i: [CHECKPOINT, str(i % 10), 1.0, 16, i]),
)


def http_crowd(base: str, clients: int, calls: int) -> tuple[list[Outcome], float]:
    fn = endpoints(base)

    async def client(number: int, start: asyncio.Event) -> list[Outcome]:
        session, outcomes = new_session(), []
        async with httpx.AsyncClient() as http:  # its own connections, as each browser has
            await start.wait()
            for i in range(calls):
                endpoint, arguments = WORK[(number + i) % len(WORK)]
                outcomes.append(await call(http, base, fn[endpoint], arguments(1000 * number + i), session))
        return outcomes

    async def crowd() -> tuple[list[Outcome], float]:
        start = asyncio.Event()
        tasks = [asyncio.create_task(client(n, start)) for n in range(clients)]
        await asyncio.sleep(0.1)  # every client waiting at the start line
        began = time.perf_counter()
        start.set()
        done = await asyncio.gather(*tasks)
        return [o for outcomes in done for o in outcomes], time.perf_counter() - began

    return asyncio.run(crowd())


def gradio_crowd(port: int, clients: int, calls: int) -> tuple[list[Outcome], float]:
    from gradio_client import Client

    connected = [connect(Client, port) for _ in range(clients)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    start_together = threading.Barrier(clients)

    def work(number: int, client) -> None:
        start_together.wait()
        for i in range(calls):
            endpoint, arguments = WORK[(number + i) % len(WORK)]
            start = time.perf_counter()
            try:
                client.submit(*arguments(1000 * number + i), api_name=endpoint).result(timeout=CALL_TIMEOUT_S)
                outcome = Outcome("answered", time.perf_counter() - start, 200)
            except Exception as error:
                text = f"{type(error).__name__}: {error}"
                refused = "queue is full" in text.lower()
                status = 503 if refused else None  # gradio_client says "queue is full" for a 503 only
                outcome = Outcome("refused" if refused else "failed", time.perf_counter() - start, status, text)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=work, args=(i, c), daemon=True) for i, c in enumerate(connected)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CALL_TIMEOUT_S * calls)
    wall = time.perf_counter() - began
    for client in connected:
        client.close()
    return outcomes, wall


def report(kind: str, clients: int, outcomes: list[Outcome], wall: float, after: Outcome) -> dict:
    by_kind = {k: [o.seconds for o in outcomes if o.kind == k] for k in ("answered", "refused", "failed")}
    refusals = by_kind["refused"]
    return {
        "kind": kind,
        "clients": clients,
        "calls": len(outcomes),
        "answered": len(by_kind["answered"]),
        "refused": len(refusals),
        "failed": len(by_kind["failed"]),
        "statuses": dict(Counter(str(o.status) for o in outcomes if o.status is not None)),
        "failure_examples": [o.note for o in outcomes if o.kind == "failed"][:3],
        "answers_per_s": round(len(by_kind["answered"]) / wall, 1),
        "wall_s": round(wall, 1),
        "answers": summary(by_kind["answered"]),
        "refusals": summary(refusals) | ({"max_ms": round(1000 * max(refusals), 1)} if refusals else {}),
        "refusals_at_server": summary([o.join_seconds for o in outcomes if o.kind == "refused" and o.join_seconds]),
        "after_ms": round(1000 * after.seconds, 1) if after.kind == "answered" else after.kind,
    }


def one_call(base: str) -> Outcome:
    """A reconstruction on its own, once a crowd has gone: the server is serving again."""

    async def go() -> Outcome:
        async with httpx.AsyncClient() as http:
            return await call(http, base, endpoints(base)["/reconstruct_heldout"], [CHECKPOINT, 7], new_session())

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[25, 100])
    parser.add_argument("--calls", type=int, default=4, help="calls per client")
    parser.add_argument("--kind", nargs="+", choices=("http", "gradio"), default=["http", "gradio"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    with serving(port) as (process, _):
        one_call(base)  # the checkpoint loaded
        crowds = []
        for kind in args.kind:
            for n in args.clients:
                crowd = http_crowd(base, n, args.calls) if kind == "http" else gradio_crowd(port, n, args.calls)
                outcomes, wall = crowd
                crowds.append(report(kind, n, outcomes, wall, one_call(base)))
        results = {"crowds": crowds, "peak_memory_mb": round(peak_memory_mb(process.pid), 1)}
        results["server_alive"] = process.poll() is None
    if args.json:
        print(json.dumps(results))
        return
    for c in results["crowds"]:
        a, r = c["answers"], c["refusals"]
        print(
            f"{c['kind']:>6} {c['clients']:>4} clients x {args.calls} calls: {c['answered']} answered,"
            f" {c['refused']} refused (queue full), {c['failed']} failed; statuses {c['statuses']};"
            f" {c['answers_per_s']} answers/s; answers p50 {a.get('p50_ms')} ms p95 {a.get('p95_ms')} ms;"
            f" refusals p50 {r.get('p50_ms')} ms p95 {r.get('p95_ms')} ms max {r.get('max_ms')} ms"
            f" (at the server: {c['refusals_at_server'] or 'not measured'});"
            f" one call after: {c['after_ms']} ms"
        )
        for example in c["failure_examples"]:
            print(f"     failure: {example}")
    print(f"server peak memory: {results['peak_memory_mb']:.0f} MB; still serving: {results['server_alive']}")


if __name__ == "__main__":
    main()
