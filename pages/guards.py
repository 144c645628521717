"""Guards in front of the app that refuse a request at the door, cheaply, before Gradio reads it.

BodyLimit: a cap on request bodies, counted as they arrive. A huge body sent straight to the
API (a JSON call carrying a 200 MB inline image, an upload far past the file cap) is answered
413 with our message before it is read whole: a body that says its length is refused before a
byte of it is read, one sent in chunks is cut off as it passes the cap. So the server never
holds more than the cap of any request, and nothing decodes it.

QueueDoor: a call that would join a full queue is answered 503 at once. Gradio refuses it too,
but only after FastAPI has validated the call and run its login check on a worker thread, and
under a crowd those threads and the model's kept the event loop waiting for the GIL, and refusals
took far longer than an answer (scripts/load_test.py measures them).

SketchBlobs: Gradio's sketchpad sends each layer of a drawing to POST component_server
(accept_blobs), which extends a list up to the layer's index in a store shared by every session:
one request naming layer 100,000,000 grew the server by ~760 MB. Only what the app's own
sketchpad sends passes (a layer, background or composite of a one-layer drawing).

Uploads: POST /gradio_api/upload takes images only (by name and by their first bytes), at most so
many bytes per visitor's address an hour, and nothing once the upload folder holds its cap; Gradio
alone takes any file of up to the size cap, as fast as it is sent, and keeps it for an hour.

KnownCalls: a call to an API name the app does not have is answered 404, not Gradio's 500.

SecurityHeaders: every answer says it may not be framed by another site, that its types are not
to be guessed, and to send no referrer.

Plain ASGI, no gradio: app.py hands them to the FastAPI app that Gradio builds (launch()'s
app_kwargs), so they are in place before the server takes its first request.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from starlette.requests import Request  # Gradio's own web framework

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]

JOINS_AT_ONCE = 4  # joins Gradio handles at once; each runs its login check on a worker thread
QUEUE_FULL = "Queue is full: the app is busy, try again in a moment"


class BodyTooLarge(Exception):
    """Raised from the app's receive() when the body passes its cap; the app's own answer is dropped."""


class BodyLimit:
    """Bodies of at most `default` bytes, or `caps[path]` for the paths named there."""

    def __init__(self, app: ASGIApp, default: int, caps: Mapping[str, int] | None = None):
        self.app = app
        self.default = default
        self.caps = dict(caps or {})

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cap = self.caps.get(scope["path"], self.default)
        declared = _content_length(scope)
        if declared is not None and declared > cap:
            return await _too_large(send, cap)  # nothing read
        received = 0
        over = started = False

        async def counted() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over:
                return  # whatever the app makes of a body cut short, the client hears our 413
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
        if over and not started:
            await _too_large(send, cap)


class QueueDoor:
    """POSTs that join the queue (the page's and gradio_client's queue/join, the plain API's
    call/NAME) are answered 503 while the calls waiting, and those let in but not yet queued,
    fill `size`; those let in go on to Gradio a few at a time.

    Each join Gradio handles runs its login check on a worker thread, and a crowd arriving at
    once made a herd of threads that kept the event loop from the GIL: answers to the surplus
    took seconds. Counting the joins let in matters for the same crowd: every one of its calls
    finds the queue empty at the door. The body is read before the door (it is capped, and a
    join's is a few hundred bytes), so a slow sender never holds a place inside.
    """

    def __init__(self, app: ASGIApp, waiting: Callable[[], int], size: int, joins: tuple[str, ...]):
        self.app = app
        self.waiting = waiting  # calls in the queue, not yet running
        self.size = size
        self.joins = joins  # paths, or path prefixes ending in "/"
        self.entering = 0  # let in, not yet answered; one event loop, so no lock
        self.inside: asyncio.Semaphore | None = None  # made on the server's event loop

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and self._joins(scope["path"])):
            return await self.app(scope, receive, send)
        body = await _whole_body(receive)
        if body is None:
            return  # the client left
        if self.waiting() + self.entering >= self.size:
            return await answer(send, 503, QUEUE_FULL)
        self.entering += 1
        self.inside = self.inside or asyncio.Semaphore(JOINS_AT_ONCE)
        try:
            async with self.inside:
                await self.app(scope, _replay(body, receive), send)
        finally:
            self.entering -= 1

    def _joins(self, path: str) -> bool:
        return any(path == join or (join.endswith("/") and path.startswith(join)) for join in self.joins)


class SketchBlobs:
    """component_server calls: a sketchpad blob goes on only for one of its few layers (400 else)."""

    PATH = "/gradio_api/component_server/"
    TYPES = ("layer", "background", "composite")

    def __init__(self, app: ASGIApp, max_layers: int = 2):
        self.app, self.max_layers = app, max_layers

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") + "/" == self.PATH):
            return await self.app(scope, receive, send)
        body = await _whole_body(receive)  # capped by BodyLimit, outside this guard
        if body is None:
            return
        if not await self._fits(scope, body):
            return await answer(send, 400, "not a drawing this app's sketchpad sends")
        await self.app(scope, _replay(body, receive), send)

    async def _fits(self, scope: dict[str, Any], body: bytes) -> bool:
        """A multipart accept_blobs call names its blob's type and layer as form fields; others pass."""
        headers = dict(scope.get("headers", []))
        if not headers.get(b"content-type", b"").startswith(b"multipart/form-data"):
            return True  # a JSON call: Gradio's validation refuses accept_blobs without files
        try:
            form = await Request(scope, _replay(body, _nothing)).form()
        except Exception:  # not a form Starlette can read; Gradio could not either
            return False
        if form.get("fn_name") != "accept_blobs":
            return True
        index = form.get("index")
        no_layer = index in (None, "", "null")
        layer = isinstance(index, str) and index.isdigit() and int(index) < self.max_layers
        return form.get("type") in self.TYPES and (no_layer or layer)


class RecentOnly(OrderedDict):
    """A dict that keeps its `size` most recently set keys: the sketchpad's blob store, which Gradio
    empties only when that drawing is submitted, so drawings sent and never submitted pile up."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)

    def __deepcopy__(self, memo: dict) -> RecentOnly:  # a session's copy of the component: its own store
        return RecentOnly(self.size)


class Uploads:
    """POST /gradio_api/upload: image files only (415); per client address in any `window_s`, at most
    `per_visitor` bytes in at most `files_per_visitor` uploads (429); none while the upload folder
    holds `folder_cap` bytes (507).

    The limits are checked on the length the request declares, before a byte of it is read; the
    body then streams through to Gradio, never held here: each file's name and first bytes are read
    as they pass (`Parts`), and Gradio hears of the body only once its first file has passed. A
    later file that fails cuts the request off with the same 415.
    """

    PATH = "/gradio_api/upload"
    SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM")  # and RIFF....WEBP
    RESCAN_S = 30.0  # the folder is measured again this often (Gradio deletes old files hourly)

    def __init__(
        self,
        app: ASGIApp,
        folder: Path,
        folder_cap: int,
        per_visitor: int,
        files_per_visitor: int,
        suffixes: tuple[str, ...],
        window_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.app, self.folder, self.folder_cap = app, Path(folder), folder_cap
        self.per_visitor, self.files_per_visitor = per_visitor, files_per_visitor
        self.suffixes, self.window_s, self.clock = tuple(s.lower() for s in suffixes), window_s, clock
        self.sent: RecentOnly = RecentOnly(4096)  # address -> deque of (time, bytes) within the window
        self.measured: tuple[float, int] | None = None  # (when, the folder's bytes then, plus uploads since)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.PATH):
            return await self.app(scope, receive, send)
        length = _content_length(scope)
        boundary = _boundary(scope)
        if length is None or boundary is None:
            return await said(send, 411 if length is None else 415, "an upload is a form that says its length")
        address = (scope.get("client") or ("unknown",))[0]
        history = self._recent(address)
        if len(history) >= self.files_per_visitor or sum(size for _, size in history) + length > self.per_visitor:
            limit = f"{self.files_per_visitor} files or {_size(self.per_visitor)} in {self.window_s / 60:g} minutes"
            return await said(send, 429, f"upload limit reached (at most {limit}); try again later")
        if await self._folder_bytes() + length > self.folder_cap:
            return await said(send, 507, "the app's upload space is full for now; try again later")
        parts = Parts(boundary, self._image)
        held = []  # the messages up to the first file's verdict
        while not (parts.refused or parts.files or parts.ended):
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            held.append(message)
            parts.feed(message.get("body", b""), last=not message.get("more_body", False))
        if parts.refused or not parts.files:
            return await self._not_images(send)
        history.append((self.clock(), length))
        when, size = self.measured
        self.measured = (when, size + length)
        await self._stream(scope, held, receive, send, parts)

    async def _stream(self, scope: dict[str, Any], held: list, receive: Receive, send: Send, parts: Parts) -> None:
        """The held messages, then the rest of the body, to Gradio; a file that fails on the way cuts it off."""
        started = False

        async def checked() -> Message:
            if held:
                return held.pop(0)
            message = await receive()
            if message["type"] == "http.request":
                parts.feed(message.get("body", b""), last=not message.get("more_body", False))
                if parts.refused:
                    raise NotAnImage
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if parts.refused:
                return  # whatever Gradio makes of a body cut short, the client hears our 415
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, checked, guarded)
        except Exception:
            if not parts.refused:
                raise
        if parts.refused and not started:
            await self._not_images(send)

    def _image(self, name: str, head: bytes) -> bool:
        """A file named as an image whose first bytes are an image's."""
        webp = head[:4] == b"RIFF" and head[8:12] == b"WEBP"
        return Path(name).suffix.lower() in self.suffixes and (head.startswith(self.SIGNATURES) or webp)

    async def _not_images(self, send: Send) -> None:
        kinds = ", ".join(s.lstrip(".").upper() for s in self.suffixes)
        await said(send, 415, f"only image files ({kinds}) can be uploaded here")

    def _recent(self, address: str) -> deque:
        history = self.sent.get(address) or deque()
        self.sent[address] = history
        while history and history[0][0] < self.clock() - self.window_s:
            history.popleft()
        return history

    async def _folder_bytes(self) -> int:
        if self.measured is None or self.clock() - self.measured[0] > self.RESCAN_S:
            self.measured = (self.clock(), await asyncio.to_thread(bytes_under, self.folder))
        return self.measured[1]


class NotAnImage(Exception):
    """Raised from the app's receive() when a file in the body is no image; its answer is dropped."""


class Parts:
    """A multipart/form-data body read as it streams past, a chunk at a time: for each part with a
    file name, `accept(name, first bytes)` decides; the first refusal sets `refused`. Only a
    delimiter's length of the body is ever kept between chunks (and a part's headers, capped)."""

    HEAD = 12  # first bytes of a file that tell its type
    MAX_HEADERS = 8192

    def __init__(self, boundary: bytes, accept: Callable[[str, bytes], bool]):
        self.delimiter = b"\r\n--" + boundary
        self.accept = accept
        self.buffer = b"\r\n"  # the body opens with the delimiter's "--boundary", without its CRLF
        self.state = "content"  # before a delimiter; then "after", "headers", "head" (a file's first bytes)
        self.name = ""
        self.files = 0  # files accepted
        self.refused = self.ended = False

    def feed(self, chunk: bytes, last: bool = False) -> None:
        self.buffer += chunk
        while not (self.refused or self.ended) and self._step(last):
            pass
        if last and not self.ended and self.state in ("headers", "head"):
            self.refused = True  # a body that stops inside a part's headers or first bytes
        self.ended = self.ended or last

    def _step(self, last: bool) -> bool:
        """One move through the buffer; False when it needs more of the body."""
        if self.state == "content":
            at = self.buffer.find(self.delimiter)
            if at < 0:
                self.buffer = self.buffer[-len(self.delimiter) :]  # may hold the start of the next one
                return False
            self.buffer, self.state = self.buffer[at + len(self.delimiter) :], "after"
        if self.state == "after":  # "--" closes the body, a line break opens a part's headers
            if len(self.buffer) < 2:
                return False
            if self.buffer.startswith(b"--"):
                self.ended = True
                return False
            self.buffer, self.state = self.buffer[2:], "headers"
        if self.state == "headers":
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                self.refused = len(self.buffer) > self.MAX_HEADERS
                return False
            name = _file_name(self.buffer[:end])
            self.buffer = self.buffer[end + 4 :]
            self.state, self.name = ("head", name) if name is not None else ("content", "")
        if self.state == "head":
            at = self.buffer.find(self.delimiter)
            if at < 0 and len(self.buffer) < self.HEAD + len(self.delimiter) and not last:
                return False  # the part may yet end within its first bytes
            head = self.buffer[: self.HEAD if at < 0 else min(self.HEAD, at)]
            if not self.accept(self.name, head):
                self.refused = True
                return False
            self.files += 1
            self.state = "content"
        return True


def _file_name(headers: bytes) -> str | None:
    """The file name a part's headers give (Content-Disposition's filename), or None for a plain field."""
    found = re.search(rb'filename\*?=(?:"([^"]*)"|([^;\r\n]*))', headers, re.IGNORECASE)
    if found is None:
        return None
    return (found.group(1) or found.group(2) or b"").decode("latin-1").rpartition("'")[2]


def _boundary(scope: dict[str, Any]) -> bytes | None:
    """The boundary of a multipart/form-data request, from its content type."""
    kind = dict(scope.get("headers", [])).get(b"content-type", b"")
    found = re.match(rb'multipart/form-data\s*;.*?boundary="?([^";]+)"?', kind, re.IGNORECASE)
    return found.group(1) if found else None


def bytes_under(folder: Path) -> int:
    """The bytes of the files under a folder (links not followed)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass  # deleted while we looked
    return total


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


class KnownCalls:
    """POST /gradio_api/call/NAME for a NAME the app does not have: 404, before Gradio's 500."""

    PREFIX = "/gradio_api/call/"

    def __init__(self, app: ASGIApp, names: frozenset[str]):
        self.app, self.names = app, names  # the app's calls are fixed once it is built

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and scope["method"] == "POST" and path.startswith(self.PREFIX):
            if path[len(self.PREFIX) :].strip("/") not in self.names:
                return await answer(send, 404, "no such call")
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Headers on every answer: never framed by another site, types not guessed, no referrer."""

    HEADERS = (
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", b"frame-ancestors 'none'; object-src 'none'; base-uri 'self'"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    )

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in self.HEADERS if name not in names]
                message = message | {"headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)


async def _whole_body(receive: Receive) -> bytes | None:
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """receive() for the app: the body read at the door, then the client's own messages (a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


async def answer(send: Send, status: int, detail: str, close: bool = False) -> None:
    """A short JSON answer in FastAPI's shape ({"detail": ...}, which gradio_client shows)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def said(send: Send, status: int, text: str) -> None:
    """A plain-text answer, as Gradio's upload route gives its own refusals: the page shows the text
    in its error box as it is."""
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send: Send, cap: int) -> None:
    """413; the connection closes after it, so the rest of a huge body is not read either."""
    await answer(send, 413, f"request too large: at most {_size(cap)} here", close=True)


def _content_length(scope: dict[str, Any]) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


def _size(n: int) -> str:
    return f"{n / 2**20:g} MiB" if n >= 2**20 else f"{n / 2**10:g} KiB"
