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

KnownCalls: a call to an API name the app does not have is answered 404, not Gradio's 500.

SecurityHeaders: every answer says it may not be framed by another site, that its types are not
to be guessed, and to send no referrer.

Plain ASGI, no gradio: app.py hands them to the FastAPI app that Gradio builds (launch()'s
app_kwargs), so they are in place before the server takes its first request.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
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
