"""A small pooled HTTP/1.1 client for upstream calls: asyncio protocol + httptools parser.

Why not aiohttp here: on the relay hot path its client was a quarter of the gateway's CPU per
request (request/response objects, header multidicts, cookie handling, tracing hooks). Upstream
calls need little of that: one method, a few headers, a JSON or SSE body, keep-alive, TLS and
timeouts. Bodies are handed over as they arrive; a stream is never held back beyond one chunk.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

_PAUSE_AT = 1 << 20  # stop reading from the socket while this much is unread


class HttpError(Exception):
    """Transport failure: connect, reset, protocol violation."""


class HttpTimeout(HttpError):
    pass


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
        except httptools.HttpParserError as exc:
            self.error = HttpError(f"malformed HTTP response: {exc}")
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
        self.complete = True

    # waiting -----------------------------------------------------------------------------------

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def wait(self, limit: float) -> None:
        """Until something new arrived (or the connection ended)."""
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        handle = loop.call_later(limit, self._expire, self._wake)
        try:
            await self._wake
        finally:
            handle.cancel()
            self._wake = None

    @staticmethod
    def _expire(fut: asyncio.Future[None]) -> None:
        if not fut.done():
            fut.set_exception(HttpTimeout("upstream read timed out"))

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
        return not self.closed and self.complete and self._parser.should_keep_alive()


class Response:
    def __init__(
        self, pool: Http1Pool, key: tuple[str, str, int], conn: _Conn, read_timeout: float
    ) -> None:
        self._pool = pool
        self._key = key
        self._conn = conn
        self._timeout = read_timeout
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
            await conn.wait(self._timeout)

    async def read(self) -> bytes:
        parts = [c async for c in self.chunks()]
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

    def release(self) -> None:
        """Back to the pool if the response was read to its end, else the connection closes."""
        if self._done:
            return
        self._done = True
        if self._conn.keep_alive and not self._conn.chunks:
            self._pool._put(self._key, self._conn)
        else:
            self.close()

    def close(self) -> None:
        self._done = True
        if self._conn.transport is not None and not self._conn.closed:
            self._conn.transport.close()


class Http1Pool:
    def __init__(
        self, *, connect_timeout: float, read_timeout: float, max_idle_per_host: int = 512
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_idle_per_host
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None

    def _put(self, key: tuple[str, str, int], conn: _Conn) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self._max_idle:
            idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()

    async def _connect(self, key: tuple[str, str, int]) -> _Conn:
        scheme, host, port = key
        loop = asyncio.get_running_loop()
        tls: ssl.SSLContext | None = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    _Conn, host, port, ssl=tls, server_hostname=host if tls else None
                ),
                self._connect_timeout,
            )
        except TimeoutError as exc:
            raise HttpTimeout("upstream connect timed out") from exc
        except OSError as exc:
            raise HttpError(f"upstream unreachable: {type(exc).__name__}") from exc
        return conn

    def _idle_conn(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def request(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https") or not parts.hostname:
            raise HttpError(f"unsupported URL scheme {scheme!r}")
        port = parts.port or (443 if scheme == "https" else 80)
        key = (scheme, parts.hostname, port)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{port}"
        head = [
            f"{method} {target} HTTP/1.1",
            f"Host: {host_header}",
            f"Content-Length: {len(body)}",
            "Connection: keep-alive",
        ]
        head.extend(f"{k}: {v}" for k, v in headers.items())
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        for attempt in range(2):
            conn = self._idle_conn(key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(key)
            conn.prepare()
            assert conn.transport is not None
            conn.transport.write(payload)
            try:
                while not conn.headers_done:
                    if conn.error is not None:
                        raise conn.error
                    await conn.wait(self._read_timeout)
            except HttpTimeout:
                conn.transport.close()
                raise
            except HttpError:
                conn.transport.close()
                # A kept-alive connection the server had already closed: nothing was read,
                # so the request never reached it. Once more on a fresh connection.
                if reused and not conn.received_any and attempt == 0:
                    continue
                raise
            return Response(self, key, conn, self._read_timeout)
        raise HttpError("upstream connection failed")  # pragma: no cover - loop always returns

    async def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
        with contextlib.suppress(Exception):
            await asyncio.sleep(0)
