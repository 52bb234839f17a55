"""A small pooled HTTP/1.1 client for upstream calls: asyncio protocol + httptools parser.

Why not aiohttp here: on the relay hot path its client was a quarter of the gateway's CPU per
request (request/response objects, header multidicts, cookie handling, tracing hooks). Upstream
calls need little of that: one method, a few headers, a JSON or SSE body, keep-alive, TLS and
timeouts. Bodies are handed over as they arrive; a stream is never held back beyond one chunk.

Every call has an end: besides the idle read timeout (no byte for that long), a request carries
an absolute deadline for the whole exchange, and a stream a maximum gap between two events, so an
upstream that trickles a byte a second cannot hold a call open. Waiting is cancel-safe: a request
cancelled at any point (the client went away) closes its connection, so the upstream sees it at
once. A request is sent again on a fresh connection only when that is safe: for an idempotent
method whose kept-alive connection failed before any byte of an answer. A POST is never resent:
the upstream may have received it, and it would run (and bill) twice.

Error messages here are fixed sentences: they never carry an address or upstream bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

_PAUSE_AT = 1 << 20  # stop reading from the socket while this much is unread
MAX_BODY = 64 << 20  # a whole (non-stream) body larger than this is refused
# Methods whose repetition changes nothing (RFC 9110 §9.2.2): the only ones ever resent.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_NEVER = float("inf")
_TARGETS_MAX = 1024  # parsed upstream URLs kept (one per channel endpoint in practice)


class HttpError(Exception):
    """Transport failure: connect, reset, protocol violation."""


class HttpTimeout(HttpError):
    """Nothing arrived for the idle timeout (or the connect timeout)."""


class HttpDeadline(HttpTimeout):
    """The call's total deadline passed."""


class HttpStalled(HttpDeadline):
    """A stream went longer than its allowed gap without an event."""


_IDLE = "upstream read timed out"
_TOTAL = "upstream call exceeded its deadline"
_GAP = "upstream stream went silent for too long"


def _timeout(why: str) -> HttpTimeout:
    if why is _GAP:
        return HttpStalled(why)
    return HttpDeadline(why) if why is _TOTAL else HttpTimeout(why)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one response at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._wake: asyncio.Future[None] | None = None
        self._reset_response()

    def _reset_response(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.headers_done = False
        self.complete = False
        self.error: Exception | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self.received_any = False
        self.reusable = False
        self.idle_since = 0.0

    def prepare(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._reset_response()

    # asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement the interface without subclassing asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.error = HttpError("unexpected protocol upgrade")
        except httptools.HttpParserError:
            self.error = HttpError("malformed HTTP response")
        if self.error is not None and self.transport is not None:
            self.transport.close()
        self._notify()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete and self.error is None:
            if (
                self.headers_done
                and "content-length" not in self.headers
                and ("chunked" not in self.headers.get("transfer-encoding", ""))
            ):
                self.complete = True  # a body delimited by the connection closing
            else:
                self.error = HttpError("connection closed before the response ended")
        self._notify()

    # httptools callbacks -----------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_AT and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        # Asked now: once the callback returns, llhttp has reset and always answers False.
        self.reusable = self._parser.should_keep_alive()
        self.complete = True

    # waiting -----------------------------------------------------------------------------------

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def wait(self, limit: float, why: str = _IDLE) -> None:
        """Until something new arrived (or the connection ended); `why` names the timeout."""
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        handle = loop.call_later(limit, self._expire, self._wake, why)
        try:
            await self._wake
        finally:
            handle.cancel()
            self._wake = None

    @staticmethod
    def _expire(fut: asyncio.Future[None], why: str) -> None:
        if not fut.done():
            fut.set_exception(_timeout(why))

    def take(self) -> bytes:
        data = b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]
        self.chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data

    @property
    def keep_alive(self) -> bool:
        return not self.closed and self.complete and self.reusable


class _Clock:
    """When the waits of one call must end: the idle timeout from now, the call's absolute
    deadline, and for a stream the gap allowed until the next event (re-armed per event)."""

    __slots__ = ("_until", "_why", "deadline", "gap", "idle")

    def __init__(self, idle: float, deadline: float, gap: float | None) -> None:
        self.idle = idle
        self.deadline = deadline
        self.gap = gap
        self._until = deadline
        self._why = _TOTAL
        self.rearm()

    def rearm(self) -> None:
        """An event arrived: the gap starts again (never past the deadline)."""
        if self.gap is not None:
            next_gap = time.monotonic() + self.gap
            if next_gap < self.deadline:
                self._until, self._why = next_gap, _GAP
            else:
                self._until, self._why = self.deadline, _TOTAL

    async def wait(self, conn: _Conn) -> None:
        left = self._until - time.monotonic()
        if left <= 0:
            raise _timeout(self._why)
        if left < self.idle:
            await conn.wait(left, self._why)
        else:
            await conn.wait(self.idle)


class Response:
    def __init__(self, pool: Http1Pool, key: tuple[str, str, int], conn: _Conn, clock: _Clock):
        self._pool = pool
        self._key = key
        self._conn = conn
        self._clock = clock
        self._done = False
        self.status = conn.status
        self.headers = conn.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive."""
        conn = self._conn
        while True:
            if conn.chunks:
                yield conn.take()
                continue
            if conn.error is not None:
                raise conn.error
            if conn.complete:
                return
            await self._clock.wait(conn)

    async def read(self, limit: int = MAX_BODY) -> bytes:
        """The whole body; the connection goes back to the pool, or is closed on any failure
        (cancellation included)."""
        conn = self._conn
        parts: list[bytes] = []
        size = 0
        try:
            while True:
                if conn.chunks:
                    part = conn.take()
                    size += len(part)
                    if size > limit:
                        raise HttpError("upstream response body too large")
                    parts.append(part)
                elif conn.error is not None:
                    raise conn.error
                elif conn.complete:
                    break
                else:
                    await self._clock.wait(conn)
        except BaseException:
            self.close()
            raise
        self.release()
        return b"".join(parts)

    async def lines(self) -> AsyncIterator[bytes]:
        """Body split into lines (for server-sent events), each yielded as soon as it ends."""
        pending = b""
        async for chunk in self.chunks():
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                yield line
        if pending:
            yield pending

    async def events(self) -> AsyncIterator[bytes]:
        """Server-sent events: the payload of each `data:` line. Comments, blank lines and other
        fields are not events: they do not reset the gap allowed between two events."""
        clock = self._clock
        async for line in self.lines():
            if line.startswith(b"data:"):
                clock.rearm()
                yield line[5:].strip()

    def release(self) -> None:
        """Back to the pool if the response was read to its end, else the connection closes."""
        if self._done:
            return
        self._done = True
        if self._conn.keep_alive and not self._conn.chunks:
            self._pool._put(self._key, self._conn)
        elif self._conn.transport is not None and not self._conn.closed:
            self._conn.transport.close()

    def close(self) -> None:
        """Abort: the connection closes (the upstream sees us leave). After `release` the
        connection belongs to the pool again and is left alone."""
        if self._done:
            return
        self._done = True
        if self._conn.transport is not None and not self._conn.closed:
            self._conn.transport.close()


class Http1Pool:
    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_idle_per_host: int = 512,
        keepalive_expiry: float = 4.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle_per_host
        # Servers close idle connections (uvicorn after 5 s): one idle longer than this is not
        # reused, so a POST (never resent) rarely meets a connection the server just closed.
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._targets: dict[str, tuple[tuple[str, str, int], str, str]] = {}
        self._ssl = ssl_context  # None: the system's trust store, made on first use

    def _put(self, key: tuple[str, str, int], conn: _Conn) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self._max_idle:
            conn.idle_since = time.monotonic()
            idle.append(conn)
        else:
            assert conn.transport is not None  # a pooled connection was made
            conn.transport.close()

    async def _connect(self, key: tuple[str, str, int], deadline: float) -> _Conn:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        left = deadline - time.monotonic()
        limit = min(self._connect_timeout, left)
        if limit <= 0:
            raise HttpDeadline(_TOTAL)
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Conn, host, port, ssl=tls, server_hostname=host if tls else None
                ),
                limit,
            )
        except TimeoutError as exc:
            if limit < self._connect_timeout:
                raise HttpDeadline(_TOTAL) from exc
            raise HttpTimeout("upstream connect timed out") from exc
        except OSError as exc:
            raise HttpError(f"upstream unreachable: {type(exc).__name__}") from exc
        return conn

    def _idle_conn(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        if not idle:
            return None
        fresh_after = time.monotonic() - self._keepalive_expiry
        while idle:
            conn = idle.pop()  # the most recently used first
            transport = conn.transport
            if conn.closed or transport is None or transport.is_closing():
                continue
            if conn.idle_since >= fresh_after:
                return conn
            transport.close()
        return None

    def _target(self, url: str) -> tuple[tuple[str, str, int], str, str]:
        """(pool key, request target, Host header) of a URL; parsed once per URL (channels are
        few, and urlsplit is a visible share of a relayed request's cost)."""
        found = self._targets.get(url)
        if found is not None:
            return found
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https") or not parts.hostname:
            raise HttpError("unsupported upstream URL")
        port = parts.port or (443 if scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
        found = ((scheme, parts.hostname, port), target, host_header)
        if len(self._targets) >= _TARGETS_MAX:
            self._targets.clear()
        self._targets[url] = found
        return found

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        deadline: float = _NEVER,
        gap: float | None = None,
    ) -> Response:
        """Send and wait for the response head. `deadline` (time.monotonic()) ends the whole
        call, body included; `gap` bounds the wait for each event of `Response.events()`."""
        key, target, host_header = self._target(url)
        head = [
            f"{method} {target} HTTP/1.1",
            f"Host: {host_header}",
            f"Content-Length: {len(body)}",
            "Connection: keep-alive",
        ]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        clock = _Clock(self._read_timeout, deadline, gap)
        resend = method in _IDEMPOTENT
        while True:
            conn = self._idle_conn(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key, deadline)
            conn.prepare()
            assert conn.transport is not None
            conn.transport.write(payload)
            try:
                while not conn.headers_done:
                    if conn.error is not None:
                        raise conn.error
                    await clock.wait(conn)
            except HttpTimeout:
                conn.transport.close()
                raise
            except HttpError:
                conn.transport.close()
                # A kept-alive connection the server had closed: nothing came back, so for an
                # idempotent method it is safe to ask once more on a fresh connection.
                if resend and reused and not conn.received_any:
                    resend = False
                    continue
                raise
            except BaseException:
                conn.transport.close()  # cancelled: the upstream must see us leave
                raise
            return Response(self, key, conn, clock)

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                assert conn.transport is not None  # only made connections are pooled
                conn.transport.close()
        self._idle.clear()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
