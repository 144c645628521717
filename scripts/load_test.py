"""Load test on loopback: many clients at once doing reconstruct and sample, bounded and self-ending.

Launches `python app.py` on a free port of 127.0.0.1, then for each crowd size starts that many
gradio_client clients together; each makes `--calls` calls, alternating a held-out reconstruction
and 16 samples from the three priors. Every call either answers, or is refused by the bounded
queue ("queue full"); anything else (an error reply, a 500, a timeout) is counted as a failure.
Reports, per crowd: answered, refused, failed, throughput, p50/p95 of the answers, p95 of the
refusals, and the server's peak memory.

    python scripts/load_test.py [--clients 25 100] [--calls 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from app_latency import CHECKPOINT, connect, free_port, peak_memory_mb, start_app, summary

WORK = (
    ("reconstruct", "/reconstruct_heldout", lambda i: (CHECKPOINT, i % 500)),
    ("sample 16 (3 priors)", "/sample", lambda i: (CHECKPOINT, str(i % 10), 1.0, 16, i)),
)
CALL_TIMEOUT_S = 120  # a call still unanswered after this is a failure, and the run ends anyway


def crowd(client_class, port: int, clients: int, calls: int) -> dict:
    connected = [connect(client_class, port) for _ in range(clients)]
    answered: list[float] = []
    refused: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_together = threading.Barrier(clients)

    def work(number: int, client) -> None:
        start_together.wait()
        for i in range(calls):
            _, endpoint, arguments = WORK[(number + i) % len(WORK)]
            start = time.perf_counter()
            job = client.submit(*arguments(1000 * number + i), api_name=endpoint)
            try:
                job.result(timeout=CALL_TIMEOUT_S)
                outcome, note = answered, None
            except Exception as error:
                text = f"{type(error).__name__}: {error}"
                outcome, note = (refused, None) if "queue is full" in text.lower() else (failures, text)
            with lock:
                if note is None:
                    outcome.append(time.perf_counter() - start)
                else:
                    failures.append(note)

    threads = [threading.Thread(target=work, args=(i, c), daemon=True) for i, c in enumerate(connected)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=CALL_TIMEOUT_S * calls)
    wall = time.perf_counter() - began
    for client in connected:
        client.close()
    return {
        "clients": clients,
        "calls": clients * calls,
        "answered": len(answered),
        "refused": len(refused),
        "failed": len(failures),
        "failure_examples": failures[:3],
        "answers_per_s": round(len(answered) / wall, 1),
        "wall_s": round(wall, 1),
        "answers": summary(answered),
        "refusals": summary(refused),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[25, 100])
    parser.add_argument("--calls", type=int, default=4, help="calls per client")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from gradio_client import Client

    port = free_port()
    process, _ = start_app(port)
    try:
        connect(Client, port).predict(CHECKPOINT, 0, api_name="/reconstruct_heldout")  # the checkpoint loaded
        results = {"crowds": [crowd(Client, port, n, args.calls) for n in args.clients]}
        results["peak_memory_mb"] = round(peak_memory_mb(process.pid), 1)
        results["server_alive"] = process.poll() is None
    finally:
        process.terminate()
        process.wait(timeout=30)
    if args.json:
        print(json.dumps(results))
        return
    for c in results["crowds"]:
        a, r = c["answers"], c["refusals"]
        print(
            f"{c['clients']:>4} clients x {args.calls} calls: {c['answered']} answered, {c['refused']} refused"
            f" (queue full), {c['failed']} failed; {c['answers_per_s']} answers/s;"
            f" answers p50 {a.get('p50_ms')} ms p95 {a.get('p95_ms')} ms; refusals p95 {r.get('p95_ms')} ms"
        )
        for example in c["failure_examples"]:
            print(f"     failure: {example}")
    print(f"server peak memory: {results['peak_memory_mb']:.0f} MB; still serving: {results['server_alive']}")


if __name__ == "__main__":
    main()
