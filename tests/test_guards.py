"""The guards of pages/guards.py on their own, in front of a stand-in app: what passes and what each
refuses, with a clock the test moves."""

from __future__ import annotations

import asyncio

import httpx

from pages.guards import Parts, Uploads

PNG = b"\x89PNG\r\n\x1a\n"
KIB = 2**10


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Taken:
    """The app behind the guard: counts what reaches it, and stores each body in the upload folder."""

    def __init__(self, folder):
        self.folder, self.calls = folder, 0

    async def __call__(self, scope, receive, send):
        body, more = b"", True
        while more:  # the whole body, as it comes, as Gradio reads an upload
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        self.calls += 1
        (self.folder / f"upload-{self.calls}").write_bytes(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})


def uploads(tmp_path, **limits):
    clock, taken = Clock(), Taken(tmp_path)
    guard = Uploads(taken, folder=tmp_path, suffixes=(".png",), clock=clock,
                    **{"folder_cap": 10**9, "per_visitor": 10**9, "files_per_visitor": 10**6} | limits)  # fmt: skip
    return guard, clock, taken


def post(guard, size: int, client: str = "10.0.0.1", name: str = "a.png") -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=guard, client=(client, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            return await http.post("/gradio_api/upload", files={"files": (name, PNG + bytes(size))})

    return asyncio.run(go())


def test_a_visitor_past_their_bytes_or_files_an_hour_is_refused_until_the_hour_has_passed(tmp_path):
    guard, clock, taken = uploads(tmp_path, per_visitor=100 * KIB, files_per_visitor=3)
    assert post(guard, 60 * KIB).status_code == 200
    refused = post(guard, 60 * KIB)
    assert refused.status_code == 429 and "at most 3 files or 100 KiB in 60 minutes" in refused.text
    assert post(guard, 60 * KIB, client="10.0.0.2").status_code == 200  # another visitor is not held back
    assert post(guard, 1 * KIB).status_code == 200 and post(guard, 1 * KIB).status_code == 200
    assert post(guard, 1 * KIB).status_code == 429  # the fourth file
    clock.now += 3601
    assert post(guard, 60 * KIB).status_code == 200
    assert taken.calls == 5


def test_nothing_is_taken_while_the_upload_folder_holds_its_cap(tmp_path):
    guard, clock, taken = uploads(tmp_path, folder_cap=300 * KIB)
    (tmp_path / "old-render.png").write_bytes(bytes(200 * KIB))  # what was there before: counted too
    assert post(guard, 50 * KIB).status_code == 200
    full = post(guard, 60 * KIB)
    assert full.status_code == 507 and full.text == "the app's upload space is full for now; try again later"
    assert taken.calls == 1
    (tmp_path / "old-render.png").unlink()  # Gradio cleans its folder; the next measure sees it
    clock.now += Uploads.RESCAN_S + 1
    assert post(guard, 60 * KIB).status_code == 200


def test_a_file_that_is_not_an_image_never_reaches_the_app(tmp_path):
    guard, _, taken = uploads(tmp_path)

    async def go(files) -> int:
        transport = httpx.ASGITransport(app=guard, client=("10.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            return (await http.post("/gradio_api/upload", files=files)).status_code

    assert asyncio.run(go({"files": ("a.png", b"#!/bin/sh\n")})) == 415
    assert asyncio.run(go({"files": ("a.sh", PNG)})) == 415
    assert asyncio.run(go([("files", ("a.png", PNG)), ("files", ("b.png", b"GZ"))])) == 415  # every file counts
    assert asyncio.run(go({"other": ("", b"")})) == 415  # no image file at all
    assert taken.calls == 0


def multipart(*files: tuple[str, bytes], boundary: bytes = b"b0und4ry") -> bytes:
    body = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello'
    for name, content in files:
        body += b"\r\n--" + boundary + b'\r\nContent-Disposition: form-data; name="files"; filename="'
        body += name.encode() + b'"\r\nContent-Type: application/octet-stream\r\n\r\n' + content
    return body + b"\r\n--" + boundary + b"--\r\n"


def seen(body: bytes, chunk: int) -> tuple[list[tuple[str, bytes]], bool]:
    """What Parts asks about each file when the body comes `chunk` bytes at a time, and its verdict."""
    asked = []
    parts = Parts(b"b0und4ry", lambda name, head: asked.append((name, head)) or name.endswith(".png"))
    for at in range(0, len(body), chunk):
        parts.feed(body[at : at + chunk], last=at + chunk >= len(body))
    return asked, parts.refused


def test_parts_reads_each_file_name_and_first_bytes_however_the_body_is_cut():
    body = multipart(("a.png", PNG + b"x" * 100), ("short.png", b"GIF"), ("b.png", b"\r\n--b0und4r" + PNG))
    expected = [("a.png", PNG + b"xxxx"), ("short.png", b"GIF"), ("b.png", b"\r\n--b0und4r" + PNG[:1])]
    for chunk in (1, 2, 3, 7, 64, len(body)):
        assert seen(body, chunk) == (expected, False), chunk
    assert seen(multipart(("a.png", PNG), ("c.sh", b"#!")), 5)[1] is True


def test_a_later_file_that_is_no_image_cuts_the_upload_off(tmp_path):
    guard, _, taken = uploads(tmp_path)

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=guard, client=("10.0.0.1", 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            files = [("files", ("a.png", PNG + bytes(100_000))), ("files", ("b.png", b"#!/bin/sh"))]
            return await http.post("/gradio_api/upload", files=files)

    refused = asyncio.run(go())
    assert refused.status_code == 415 and "only image files" in refused.text
