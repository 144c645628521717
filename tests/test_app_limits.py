"""The launched app under abuse and overload: huge bodies refused unread, a full queue answered at
once, no way around the queue, and per-session memory bounded."""

from __future__ import annotations

import asyncio
import gzip
import io
import select
import socket
import uuid
from urllib.parse import urlparse

import httpx
import pytest
from PIL import Image

import app
from pages.guards import QUEUE_FULL
from tests.app_server import SHIPPED

PNG = b"\x89PNG\r\n\x1a\n"  # the first bytes of every PNG file
INLINE_IMAGE = b'{"data": ["checkpoints/mnist", {"url": "data:image/png;base64,'
MIB = 2**20


def resident_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raw_post(url: str, path: str, headers: dict[str, str], chunks) -> tuple[bytes, int]:
    """POST over a bare socket, sending chunks until the server answers or hangs up.
    Returns (answer, bytes of the body sent); an empty answer if none came within 20 s."""
    address = urlparse(url)
    head = f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sent, answer = 0, b""
    with socket.create_connection((address.hostname, address.port), timeout=20) as s:
        s.sendall(head.encode())
        try:
            for chunk in chunks:
                if select.select([s], [], [], 0)[0]:
                    break  # an answer came: stop sending
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:  # the server hung up on the rest
            pass
        try:
            while chunk := s.recv(65536):
                answer += chunk
        except OSError:
            pass
        return answer, sent


def status_and_body(answer: bytes) -> tuple[int, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_huge_body_that_gives_its_length_is_refused_before_a_byte_is_read(app_server):
    """Only the headers are sent: a server that waited for the 200 MiB promised would never answer."""
    answer, sent = raw_post(
        app_server.url,
        "/gradio_api/queue/join",
        {"Content-Type": "application/json", "Content-Length": str(200 * MIB)},
        [],
    )
    status, body = status_and_body(answer)
    assert status == 413 and b"request too large: at most 1 MiB here" in body
    assert sent == 0


def test_a_huge_chunked_body_is_cut_off_at_the_cap_and_never_held(app_server):
    chunk = b"A" * MIB
    framed = b"%x\r\n%s\r\n" % (len(chunk), chunk)

    def body():
        yield b"%x\r\n%s\r\n" % (len(INLINE_IMAGE), INLINE_IMAGE)
        for _ in range(100):
            yield framed

    before = resident_mb()
    answer, sent = raw_post(
        app_server.url,
        "/gradio_api/queue/join",
        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        body(),
    )
    status, text = status_and_body(answer)
    assert status == 413 and b"at most 1 MiB" in text
    assert sent < 32 * MIB  # 100 MiB was on offer: the server hung up on the rest
    assert resident_mb() - before < 40  # the server held at most its cap of it


@pytest.mark.parametrize("path", ["/gradio_api/queue/join", "/gradio_api/call/reconstruct_heldout", "/"])
def test_an_ordinary_client_sending_a_big_body_hears_our_413(app_server, path):
    body = INLINE_IMAGE + b"A" * (50 * MIB)
    response = httpx.post(app_server.url.rstrip("/") + path, content=body, timeout=30)
    assert response.status_code == 413
    assert response.json() == {"detail": "request too large: at most 1 MiB here"}


def test_uploads_up_to_the_file_cap_still_work_and_bigger_ones_are_refused(app_server):
    url = app_server.url + "gradio_api/upload"
    fits = httpx.post(url, files={"files": ("big.png", PNG + bytes(15 * MIB))}, timeout=60)
    assert fits.status_code == 200 and fits.json()[0].endswith("big.png")
    too_big = httpx.post(url, files={"files": ("huge.png", bytes(20 * MIB))}, timeout=60)
    assert too_big.status_code == 413 and "at most 17 MiB" in too_big.json()["detail"]


def test_no_call_skips_the_queue(app_server):
    """Gradio's /run/NAME routes run a call at once, past the queue's size and concurrency limits."""
    for route in ("run", "api"):
        response = httpx.post(
            f"{app_server.url}gradio_api/{route}/reconstruct_heldout", json={"data": [SHIPPED, 3, None]}, timeout=30
        )
        assert response.status_code != 200 and "event_id" not in response.text


async def _crowd_call(http: httpx.AsyncClient, base: str, fn_index: int, index: int) -> tuple[int, str, bool]:
    """One held-out reconstruction through the queue: (join status, why it was refused, answered)."""
    session = uuid.uuid4().hex[:11]
    body = {"data": [SHIPPED, index, None], "fn_index": fn_index, "session_hash": session, "event_data": None}
    joined = await http.post(f"{base}gradio_api/queue/join", json=body)
    if joined.status_code != 200:
        return joined.status_code, joined.json().get("detail", ""), False
    async with http.stream("GET", f"{base}gradio_api/queue/data", params={"session_hash": session}) as stream:
        async for line in stream.aiter_lines():
            if '"process_completed"' in line:
                return 200, "", '"success":true' in line.replace(" ", "")
    return 200, "", False


def test_a_crowd_past_the_queue_is_refused_at_once_and_the_rest_answered(app_server):
    base = app_server.url
    fn_index = next(d["id"] for d in httpx.get(f"{base}config").json()["dependencies"]
                    if d.get("api_name") == "reconstruct_heldout")  # fmt: skip
    crowd = app.QUEUE_SIZE + 30

    async def run():
        clients = [httpx.AsyncClient(timeout=120) for _ in range(crowd)]
        try:
            return await asyncio.gather(*(_crowd_call(c, base, fn_index, i) for i, c in enumerate(clients)))
        finally:
            await asyncio.gather(*(c.aclose() for c in clients))

    outcomes = asyncio.run(run())
    statuses = [status for status, _, _ in outcomes]
    refusals = [why for status, why, _ in outcomes if status == 503]
    assert set(statuses) <= {200, 503}
    assert len(refusals) >= crowd - app.QUEUE_SIZE - app.CALLS_AT_ONCE  # a few may finish before the last join
    assert set(refusals) == {QUEUE_FULL}  # refused at our door, not by Gradio after its checks (how fast: bench)
    assert all(answered for status, _, answered in outcomes if status == 200)
    one = httpx.post(f"{base}gradio_api/call/reconstruct_heldout", json={"data": [SHIPPED, 1, None]}, timeout=30)
    assert one.status_code == 200  # the server serves again


def test_sessions_kept_are_bounded(app_server):
    """Gradio keeps ~0.5 MB per session until it is among the least recently used beyond SESSIONS."""
    base = app_server.url
    with httpx.Client(timeout=30) as http:
        for _ in range(app.SESSIONS + 10):  # each plain API call is a session of its own
            event = http.post(f"{base}gradio_api/call/training_status", json={"data": [""]}).json()["event_id"]
            assert "event: complete" in http.get(f"{base}gradio_api/call/training_status/{event}").text
    assert len(app_server.demo.server_app.state_holder.session_data) <= app.SESSIONS


def test_the_queue_keeps_no_record_of_past_calls(app_server):
    """Gradio's records for its monitoring page (off here) grew to 10,000 and were summed with pandas
    after every call."""
    with httpx.Client(timeout=30) as http:
        for index in range(3):
            event = http.post(
                f"{app_server.url}gradio_api/call/reconstruct_heldout", json={"data": [SHIPPED, index, None]}
            )
            http.get(f"{app_server.url}gradio_api/call/reconstruct_heldout/{event.json()['event_id']}")
    queue = app_server.demo._queue
    assert len(queue.event_analytics) <= 1 and queue.cached_event_analytics_summary == {"functions": {}}


def test_every_answer_carries_the_security_headers(app_server):
    for answer in (httpx.get(app_server.url, timeout=30), httpx.get(f"{app_server.url}config", timeout=30)):
        headers = answer.headers
        assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_the_server_does_not_say_what_it_is(app_server):
    for answer in (httpx.get(app_server.url, timeout=30), httpx.get(f"{app_server.url}config", timeout=30)):
        assert "server" not in answer.headers


def test_only_images_are_uploaded(app_server):
    url = app_server.url + "gradio_api/upload"
    bomb = gzip.compress(bytes(4 * MIB))  # what a training source could unpack: no image
    for name, content in (("train-images-idx3-ubyte.gz", bomb), ("photo.png", bomb), ("photo.txt", PNG)):
        refused = httpx.post(url, files={"files": (name, content)}, timeout=30)
        assert refused.status_code == 415, name
        assert refused.text == "only image files (PNG, JPG, JPEG, WEBP, GIF, BMP) can be uploaded here"
    photo = io.BytesIO()
    Image.new("RGB", (28, 28), "white").save(photo, format="JPEG")
    taken = httpx.post(url, files={"files": ("photo.jpg", photo.getvalue())}, timeout=30)
    assert taken.status_code == 200 and taken.json()[0].endswith("photo.jpg")


def test_a_call_the_app_does_not_have_is_a_404(app_server):
    answer = httpx.post(f"{app_server.url}gradio_api/call/nonexistent", json={"data": []}, timeout=30)
    assert answer.status_code == 404 and answer.json() == {"detail": "no such call"}


def sketch_blob(app_server, index: str, kind: str = "layer") -> httpx.Response:
    sketch = next(b for b in app_server.demo.blocks.values() if getattr(b, "elem_id", None) == "sketch")
    form = {"fn_name": "accept_blobs", "session_hash": "probe", "component_id": str(sketch._id), "type": kind,
            "index": index, "id": uuid.uuid4().hex}  # fmt: skip
    files = {"file": ("blob", b"\x89PNG", "image/png")}
    return httpx.post(f"{app_server.url}gradio_api/component_server/", data=form, files=files, timeout=30)


def test_the_sketchpad_takes_blobs_of_its_own_layers_only_and_keeps_a_bounded_few(app_server):
    assert sketch_blob(app_server, "0").status_code == 200
    assert sketch_blob(app_server, "null", kind="composite").status_code == 200
    before = resident_mb()
    for index in ("100000000", "2", "-1", "x"):
        refused = sketch_blob(app_server, index)
        assert refused.status_code == 400 and "sketchpad" in refused.json()["detail"]
    assert sketch_blob(app_server, "0", kind="anything").status_code == 400
    for _ in range(60):  # drawings sent and never submitted
        assert sketch_blob(app_server, "0").status_code == 200
    sketch = next(b for b in app_server.demo.blocks.values() if getattr(b, "elem_id", None) == "sketch")
    assert len(sketch.blob_storage) <= 32
    assert resident_mb() - before < 20


def test_recent_only_keeps_the_last_keys_set_and_copies_empty():
    import copy

    from pages.guards import RecentOnly

    store = RecentOnly(3)
    for key in "abcd":
        store[key] = key
    store["b"] = "again"  # set again: the most recent
    store["e"] = "e"
    assert list(store) == ["d", "b", "e"]
    copied = copy.deepcopy(store)
    assert isinstance(copied, RecentOnly) and copied.size == 3 and not copied
