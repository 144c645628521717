"""A light client of the app's queue, for the measuring scripts: one asyncio event loop can hold
hundreds of calls in flight, so what it times is the server, not the client.

It speaks the protocol the page and gradio_client speak: POST /gradio_api/queue/join with the
call's data, its endpoint's fn_index and the session's hash; the answer is an event id, or 503
when the queue is full; then GET /gradio_api/queue/data?session_hash=... streams the session's
messages until the call's `process_completed`. A session is a session hash: calls made under
the same one share their gr.State (an edit after a reconstruction), as in one browser tab;
a State input is sent as None, as gradio_client does, and the server fills it in.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import httpx

CALL_TIMEOUT_S = 120  # a call still unanswered after this is a failure


@dataclass
class Outcome:
    kind: str  # "answered", "refused" (503, queue full) or "failed" (anything else)
    seconds: float  # from sending the call to its answer or refusal
    status: int | None  # the join's HTTP status; None when no answer came
    note: str = ""  # why it failed
    join_seconds: float | None = None  # from the join's last byte sent to its answer's headers: the server's time


@dataclass
class Endpoint:
    fn_index: int
    states: tuple[int, ...]  # positions of gr.State inputs: the session holds them, the call sends None

    def body(self, data: list, session: str) -> dict:
        values = list(data)
        for position in self.states:
            values.insert(position, None)
        return {"data": values, "fn_index": self.fn_index, "session_hash": session, "event_data": None}


def endpoints(base: str, cookies: httpx.Cookies | None = None) -> dict[str, Endpoint]:
    """api_name ("/sample") -> its Endpoint, from the app's config (`cookies`: a login's, behind one)."""
    config = httpx.get(f"{base}config", timeout=30, cookies=cookies).json()
    states = {c["id"] for c in config["components"] if c.get("type") == "state"}
    return {
        f"/{d['api_name']}": Endpoint(d["id"], tuple(i for i, c in enumerate(d["inputs"]) if c in states))
        for d in config["dependencies"]
        if d.get("api_name")
    }


def new_session() -> str:
    return uuid.uuid4().hex[:11]


async def call(http: httpx.AsyncClient, base: str, endpoint: Endpoint, data: list, session: str) -> Outcome:
    """One call, start to finish; never raises."""
    start = time.perf_counter()
    marks: dict[str, float] = {}

    async def trace(name: str, info: dict) -> None:
        marks[name] = time.perf_counter()

    try:
        joined = await http.post(
            f"{base}gradio_api/queue/join",
            json=endpoint.body(data, session),
            timeout=CALL_TIMEOUT_S,
            extensions={"trace": trace},
        )
    except httpx.HTTPError as error:
        return Outcome("failed", time.perf_counter() - start, None, f"join: {type(error).__name__}: {error}")
    sent, heard = marks.get("http11.send_request_body.complete"), marks.get("http11.receive_response_headers.complete")
    server = heard - sent if sent and heard else None
    if joined.status_code == 503:
        return Outcome("refused", time.perf_counter() - start, 503, join_seconds=server)
    if joined.status_code != 200:
        return Outcome("failed", time.perf_counter() - start, joined.status_code, joined.text[:200], server)
    event = joined.json()["event_id"]
    try:
        note = await _completion(http, base, session, event)
    except httpx.HTTPError as error:
        note = f"stream: {type(error).__name__}: {error}"
    return Outcome("failed" if note else "answered", time.perf_counter() - start, 200, note, server)


async def _completion(http: httpx.AsyncClient, base: str, session: str, event: str) -> str:
    """Reads the session's stream until `event` completes: "" when it succeeded, else why not."""
    url = f"{base}gradio_api/queue/data"
    async with http.stream("GET", url, params={"session_hash": session}, timeout=CALL_TIMEOUT_S) as stream:
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed" and message.get("event_id") == event:
                return "" if message.get("success") else f"error: {str(message.get('output'))[:200]}"
            if message.get("msg") == "unexpected_error":
                return f"unexpected_error: {message.get('message')}"
    return "the stream ended before the answer"
