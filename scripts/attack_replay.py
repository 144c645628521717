"""Every request of the attack report on a public demo, replayed against a fresh app on 127.0.0.1.

The app is served behind a login, the one mode in which visitors may train (a public demo trains
nothing); every visitor here has logged in. Each request must be refused, or bounded. Then the
targets:
  - the server's resident memory after all of them within +100 MB of its idle figure;
  - the Gradio temp folder (uploads, rendered images) within its cap;
  - with `--tabs` idle tabs open (each holding its heartbeat stream, as a browser tab does), at
    least 95% of legitimate calls answered within 2 s.

The app runs with its own runs and data folders and temp folder, made here and removed at the end;
nothing is sent anywhere but 127.0.0.1.

    python scripts/attack_replay.py [--tabs 150] [--calls 40] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for vqvae and app

from memory_growth import resident_mb  # noqa: E402
from queue_client import call, endpoints, new_session  # noqa: E402

from pages.guards import bytes_under  # noqa: E402
from vqvae.app.exposure import REFUSED_PATH  # noqa: E402
from vqvae.bench.app import CHECKPOINT, free_port, percentile, serving  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEMORY_TARGET_MB = 100
TABS_TARGET = (0.95, 2.0)  # share of legitimate calls, within seconds
TEMP_CAP = 2**30  # app.TEMP_CAP (not imported: importing app loads gradio)
BOMB_BYTES = 2 * 10**9  # what the 2 MB upload of the report unpacks to
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Check:
    item: str  # the report's item
    what: str
    ok: bool
    detail: str = ""


LOGIN = ("replay", uuid.uuid4().hex)


def visitor(base: str) -> httpx.Client:
    """A new visitor, logged in."""
    http = httpx.Client(timeout=120)
    http.post(f"{base}login", data={"username": LOGIN[0], "password": LOGIN[1]}).raise_for_status()
    return http


@dataclass
class Replay:
    base: str
    pid: int
    folders: dict[str, Path]
    http: httpx.Client  # the attacker, logged in
    checks: list[Check] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # every text the server sent back
    memory: dict[str, float] = field(default_factory=dict)  # the server's resident MB after each step

    def check(self, item: str, what: str, ok: bool, detail: str = "") -> None:
        self.checks.append(Check(item, what, bool(ok), detail[:300]))

    def api(self, name: str, data: list, http: httpx.Client | None = None) -> tuple[str, str]:
        """A call over the plain API: ("complete" or "error", the answer's text)."""
        http = http or self.http
        joined = http.post(f"{self.base}gradio_api/call/{name}", json={"data": data})
        if joined.status_code != 200:
            self.messages.append(joined.text)
            return "refused", f"{joined.status_code} {joined.text}"
        event = joined.json()["event_id"]
        kind, text = "error", ""
        with http.stream("GET", f"{self.base}gradio_api/call/{name}/{event}") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind in ("complete", "error"):
                    text = line[6:]
                    break
        self.messages.append(text)
        return kind, text


def write_bomb(path: Path, images: int) -> None:
    """An IDX image file whose header says (images, 1000, 1000) and whose zeros unpack to that."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, 0x08, 3]) + b"".join(n.to_bytes(4, "big") for n in (images, 1000, 1000))
    chunk = bytes(2**24)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        for _ in range(images * 10**6 // len(chunk)):
            f.write(chunk)


def start_training(replay: Replay, name: str, data: str, k: int = 64, d: int = 16, minutes: float = 0.1):
    return replay.api("start_training", [name, "digits-tiny", data, minutes, k, d, 0.003, 0, "attacker"])


# ---------------------------------------------------------------- the report's items


def data_sources(replay: Replay) -> None:
    for source in (
        "folder:/root",
        "folder:../../../../etc",
        "idx:/usr/share/datasets/fashion-mnist",
        "npz:/etc/passwd",
    ):
        kind, text = start_training(replay, f"probe-{uuid.uuid4().hex[:6]}", source)
        refused = kind == "error" and json.loads(text)["error"] == REFUSED_PATH  # that one message, nothing more
        replay.check("1", f"a path outside the data folder is refused without a word of it: {source}", refused, text)


def a_bomb(replay: Replay) -> None:
    bomb = replay.folders["work"] / "train-images-idx3-ubyte.gz"
    write_bomb(bomb, BOMB_BYTES // 10**6)
    upload = replay.http.post(f"{replay.base}gradio_api/upload", files={"files": (bomb.name, bomb.read_bytes())})
    replay.messages.append(upload.text)
    replay.check(
        "2",
        f"a gzip IDX upload ({bomb.stat().st_size / 1e6:.1f} MB) is refused",
        upload.status_code == 415,
        f"{upload.status_code} {upload.text}",
    )
    kind, text = start_training(replay, "bomb-upload", f"idx:{replay.folders['temp']}")
    replay.check("2", "the upload folder is no data source", kind == "error" and "not open" in text, text)
    (replay.folders["data"] / "bomb").mkdir()
    shutil.copy(bomb, replay.folders["data"] / "bomb" / bomb.name)
    before = resident_mb(replay.pid)
    kind, text = start_training(replay, "bomb-data", "idx:bomb")
    if kind == "complete":  # started: it must end, refused by the loader, without taking the machine
        state = wait_for_run(replay)
        text = state
    replay.check(
        "2",
        "a bomb inside the data folder ends in a clear refusal",
        "images" in text or "budget" in text or "too large" in text or "at most" in text,
        text,
    )
    replay.check(
        "2",
        "the server did not grow with it",
        resident_mb(replay.pid) - before < 50,
        f"{resident_mb(replay.pid) - before:+.0f} MB",
    )


def wait_for_run(replay: Replay, limit_s: float = 300) -> str:
    """The run's last status text once it is no longer going."""
    deadline = time.monotonic() + limit_s
    text = ""
    while time.monotonic() < deadline:
        kind, text = replay.api("training_status", ["attacker"])
        if kind == "complete" and not any(f"{s}," in text for s in (": running", ": stopping")):
            return text
        time.sleep(1)
    return text


def sketch_blob(replay: Replay) -> None:
    config = replay.http.get(f"{replay.base}config").json()
    sketch = next(c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == "sketch")
    before = resident_mb(replay.pid)
    form = {
        "fn_name": "accept_blobs",
        "session_hash": "probe",
        "component_id": str(sketch),
        "type": "layer",
        "index": "100000000",
        "id": uuid.uuid4().hex,
    }
    answer = replay.http.post(
        f"{replay.base}gradio_api/component_server/",
        data=form,
        files={"file": ("blob", b"\x89PNG", "image/png")},
        timeout=60,
    )
    replay.messages.append(answer.text)
    grew = resident_mb(replay.pid) - before
    replay.check(
        "3",
        "a sketch layer at index 100,000,000 is refused",
        answer.status_code == 400 and grew < 20,
        f"{answer.status_code}, {grew:+.0f} MB",
    )


def disk(replay: Replay) -> None:
    kind, text = start_training(replay, "huge", "digits", k=65536, d=4096)
    refused = kind == "error" and ("would be about" in text or "at most" in text)
    replay.check("4", "a run with K=65536, D=4096 is refused before it starts", refused, text)
    replay.check("4", "and leaves nothing in runs/", not (replay.folders["runs"] / "huge").exists())
    statuses = []
    image = PNG + os.urandom(5 * 2**20)
    for i in range(80):  # 400 MB from one visitor
        answer = replay.http.post(f"{replay.base}gradio_api/upload", files={"files": (f"flood{i}.png", image)})
        statuses.append(answer.status_code)
        if answer.status_code != 200:
            replay.messages.append(answer.text)
    taken, refused = statuses.count(200), len(statuses) - statuses.count(200)
    replay.check(
        "4",
        "an upload flood from one visitor is cut off",
        refused > 0 and taken * len(image) <= 2**28 + len(image),
        f"{taken} taken, {refused} refused ({sorted(set(statuses))})",
    )
    used = bytes_under(replay.folders["temp"])
    replay.check("4", "the upload folder is within its cap", used <= TEMP_CAP, f"{used / 2**20:.0f} MiB")


def owners_and_the_picker(replay: Replay) -> None:
    name = "legit"
    student = visitor(replay.base)
    settings = [name, "digits-tiny", "digits", 0.1, 64, 16, 0.003, 0, "student"]
    kind, text = replay.api("start_training", settings, student)
    student.close()
    replay.check("5", "a student's small run starts", kind == "complete", text)
    kind, text = replay.api("reconstruct_heldout", [f"runs/{name}", 0])
    replay.check("7", "a run being trained cannot be opened", kind == "error" and "not one of" in text, text)
    kind, text = replay.api("stop_training", ["attacker"])
    replay.check("5", "another visitor cannot stop it", kind == "error" and "only they can stop it" in text, text)
    wait_for_run(replay)
    kind, text = replay.api("reconstruct_heldout", [f"runs/{name}", 0])
    replay.check("7", "the finished run opens", kind == "complete", text[:100])


def call_times(replay: Replay, first: int) -> float:
    """The median seconds of 10 held-out reconstructions not made before (inf for one not answered)."""
    times = []
    for i in range(first, first + 10):
        start = time.perf_counter()
        kind, _ = replay.api("reconstruct_heldout", [CHECKPOINT, i])
        times.append(time.perf_counter() - start if kind == "complete" else float("inf"))
    return percentile(times, 50)


def many_runs(replay: Replay) -> None:
    """Model calls with 5,000 run folders beside the shipped checkpoint, against calls without."""
    before = call_times(replay, 100)
    shipped = ROOT / CHECKPOINT
    for i in range(5000):
        folder = replay.folders["runs"] / f"copy{i:04d}"
        folder.mkdir()
        for file in shipped.iterdir():
            if file.is_file():
                os.link(file, folder / file.name)  # the same bytes, no more disk
    time.sleep(3)  # the catalog reads a root again while it changed within 2 s (catalog.SETTLE_NS)
    after = call_times(replay, 200)
    slowed = after <= 1.5 * before + 0.02
    replay.check("5", "5,000 run folders do not slow a model call", slowed, f"median {before:.3f} s -> {after:.3f} s")


def headers_and_leaks(replay: Replay) -> None:
    page = replay.http.get(replay.base)
    headers = page.headers
    framed = headers.get("x-frame-options") == "DENY" and "frame-ancestors 'none'" in headers.get(
        "content-security-policy", ""
    )
    replay.check(
        "9",
        "the page may not be framed, nor its types guessed",
        framed and headers.get("x-content-type-options") == "nosniff",
    )
    replay.check("9", "no server header", "server" not in headers, headers.get("server", ""))
    missing = replay.http.post(f"{replay.base}gradio_api/call/nonexistent", json={"data": []})
    replay.check("9", "an unknown call is a 404", missing.status_code == 404, str(missing.status_code))
    # Gradio's own file references name its temp folder (in the system's temp folder): no other
    secret = [str(ROOT), *(str(replay.folders[name]) for name in ("runs", "data"))]
    leaked = [m for m in replay.messages if any(s in m for s in secret)]
    replay.check("9", "no message names a server folder", not leaked, leaked[0][:200] if leaked else "")


def open_host() -> Check:
    env = {k: v for k, v in os.environ.items() if k not in ("VQVAE_PUBLIC", "VQVAE_AUTH")}
    done = subprocess.run(
        [sys.executable, "app.py", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ok = done.returncode != 0 and "makes the app reachable" in done.stderr
    return Check("10", "--host 0.0.0.0 without --public or a login does not start", ok, done.stderr.strip()[-200:])


# ---------------------------------------------------------------- idle tabs


async def idle_tabs(base: str, tabs: int, calls: int) -> list[float]:
    """`tabs` tabs open (the page, its heartbeat stream held), then `calls` legitimate calls from two
    visitors at a time; returns each call's seconds (inf when not answered)."""
    held: list[str] = []
    limits = httpx.Limits(max_connections=tabs + 10)
    async with httpx.AsyncClient(timeout=None, limits=limits) as http:
        await http.post(f"{base}login", data={"username": LOGIN[0], "password": LOGIN[1]})
        fn = endpoints(base, http.cookies)

        async def tab() -> None:
            session = new_session()
            await http.get(base)
            async with http.stream("GET", f"{base}gradio_api/heartbeat/{session}") as stream:
                held.append(session)
                async for _ in stream.aiter_bytes():  # a heartbeat every 15 s, until the tab is closed
                    pass

        tasks = [asyncio.create_task(tab()) for _ in range(tabs)]
        while len(held) < tabs:
            await asyncio.sleep(0.1)
        times: list[float] = []

        async def visitor(first: int) -> None:
            session = new_session()  # one visitor, one tab: its calls share a session
            for i in range(first, calls, 2):
                endpoint, data = (
                    ("/reconstruct_heldout", [CHECKPOINT, i]) if i % 2 else ("/sample", [CHECKPOINT, "3", 1.0, 16, i])
                )
                outcome = await call(http, base, fn[endpoint], data, session)
                times.append(outcome.seconds if outcome.kind == "answered" else float("inf"))

        await asyncio.gather(visitor(0), visitor(1))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return times


# ---------------------------------------------------------------- the run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabs", type=int, default=150)
    parser.add_argument("--calls", type=int, default=40, help="legitimate calls while the tabs are open")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vqvae-replay-"))
    folders = {name: work / name for name in ("runs", "data", "temp")} | {"work": work}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)
    port = free_port()
    flags = ("--runs-dir", str(folders["runs"]), "--data-root", str(folders["data"]))
    results: dict = {}
    os.environ["VQVAE_AUTH"] = ":".join(LOGIN)  # for the app, which this process starts
    try:
        with serving(port, folders["temp"], flags) as (process, _):
            base = f"http://127.0.0.1:{port}/"
            replay = Replay(base, process.pid, folders, visitor(base))
            for i in range(6):  # the pages' calls once, so what loads on first use has loaded
                replay.api("reconstruct_heldout", [CHECKPOINT, i])
                replay.api("sample", [CHECKPOINT, "3", 1.0, 16, i])
            idle = resident_mb(process.pid)
            replay.memory["idle"] = idle
            for step in (data_sources, a_bomb, sketch_blob, disk, owners_and_the_picker, headers_and_leaks, many_runs):
                step(replay)
                replay.memory[step.__name__] = resident_mb(process.pid)
            times = asyncio.run(idle_tabs(replay.base, args.tabs, args.calls))
            replay.memory["idle_tabs"] = resident_mb(process.pid)
            share = sum(t <= TABS_TARGET[1] for t in times) / len(times)
            replay.check(
                "6",
                f"{args.tabs} idle tabs: >= 95% of calls within 2 s",
                share >= TABS_TARGET[0],
                f"{100 * share:.0f}% within 2 s, p95 {percentile(times, 95):.2f} s",
            )
            after = resident_mb(process.pid)
            replay.check(
                "all",
                f"memory within +{MEMORY_TARGET_MB} MB of idle",
                after - idle <= MEMORY_TARGET_MB,
                f"idle {idle:.0f} MB, after {after:.0f} MB ({after - idle:+.0f} MB)",
            )
            replay.checks.append(open_host())
            results = {
                "checks": [asdict(c) for c in replay.checks],
                "memory_mb": {step: round(mb, 1) for step, mb in replay.memory.items()},
                "idle_mb": idle,
                "after_mb": after,
                "temp_mib": bytes_under(folders["temp"]) / 2**20,
            }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    failed = [c for c in results.get("checks", []) if not c["ok"]]
    if args.json:
        print(json.dumps(results))
    else:
        for c in results["checks"]:
            print(
                f"{'ok  ' if c['ok'] else 'FAIL'} [{c['item']:>3}] {c['what']}"
                + (f": {c['detail']}" if c["detail"] else "")
            )
        print(
            "server memory (MB) after each step: " + ", ".join(f"{k} {v:.0f}" for k, v in results["memory_mb"].items())
        )
        print(f"{len(results['checks']) - len(failed)} of {len(results['checks'])} held")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
