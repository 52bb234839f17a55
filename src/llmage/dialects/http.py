"""Edge helpers every dialect shares: bounded JSON bodies, fast JSON responses, SSE streaming."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from llmage.domain.errors import ClientClosedRequest, InvalidRequest, PayloadTooLarge
from llmage.domain.principal import KeyAuth
from llmage.services.platform import Platform

Endpoint = Callable[[Request], Awaitable[Response]]
T = TypeVar("T")


def lean(endpoint: Endpoint) -> Endpoint:
    """Mark a hot endpoint (signature: request only) to be served by a plain Starlette route.

    FastAPI still registers it, so it stays in /docs; the app puts a Starlette Route for the same
    path in front (see app.py), which skips FastAPI's dependency machinery on every request.
    """
    endpoint.__dict__["lean"] = True
    return endpoint


class JSONBytes(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def platform_of(request: Request) -> Platform:
    p: Platform = request.app.state.platform
    return p


async def authenticate(request: Request) -> KeyAuth:
    return await platform_of(request).keys.authenticate(request.headers.get("authorization"))


async def read_json(request: Request) -> Any:
    limit = platform_of(request).settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Request body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"Request body exceeds {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise InvalidRequest("Request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc.msg} at {exc.pos}") from exc


async def until_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """Await `work` (an upstream call) in this task, cancelled as soon as the client disconnects:
    the upstream connection closes and the hold is released at once, instead of generating for
    nobody until the call ends. Then raises ClientClosedRequest (answered to no one).

    The request body must have been read: from then on the server's `receive` only ever answers
    the disconnect. One small task per call watches for it."""
    task = asyncio.current_task()
    assert task is not None
    gone = False

    async def watch() -> None:
        nonlocal gone
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone = True
        task.cancel()

    watcher = asyncio.create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        # Ours alone (a server shutdown cancels too): answer it; otherwise cancellation goes on.
        if gone and task.uncancel() == 0:
            raise ClientClosedRequest() from None
        raise
    finally:
        watcher.cancel()


def body_doc(model: type[BaseModel], example: Any = None) -> dict[str, Any]:
    """OpenAPI requestBody for routes that parse JSON themselves (faster than FastAPI models)."""
    media: dict[str, Any] = {"schema": model.model_json_schema()}
    if example is not None:
        media["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": media}}}


class EventStreamResponse(Response):
    """Server-sent events straight from an async iterator, one write per event.

    Watches for the client going away and then closes the iterator, so the service's `finally`
    (settlement, closing the upstream) runs at once rather than whenever the GC gets to it.
    """

    def __init__(
        self, events: AsyncIterator[bytes], headers: Mapping[str, str] | None = None
    ) -> None:
        # Not Response.__init__: there is no body to render; FastAPI only needs the type.
        self.status_code = 200
        self.background = None
        self._events = events
        self._sse_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._sse_headers})
        pump = asyncio.create_task(self._pump(send))
        watch = asyncio.create_task(self._watch(receive))
        try:
            done, _ = await asyncio.wait({pump, watch}, return_when=asyncio.FIRST_COMPLETED)
            if pump not in done:
                pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
        finally:
            watch.cancel()
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                await aclose()

    async def _pump(self, send: Send) -> None:
        async for event in self._events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass


def sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


SSE_DONE = b"data: [DONE]\n\n"
