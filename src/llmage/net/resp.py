"""A small Redis client (RESP2 over asyncio): what the limits and the invalidation bus need.

One connection per client, auto-pipelined: every command is written at once and its reply
future queued; a Protocol parses replies as bytes arrive and resolves them in order. Concurrent
requests therefore share one socket and one round trip each, with no pool and no per-command
task. Every command has a short deadline; a failure closes the connection, fails what was
pending and makes the client refuse new commands for `retry_seconds` (callers fall back at once
instead of each waiting out a connect timeout while Redis is down). `Subscriber` holds a
separate pub/sub connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)

Arg = str | bytes | int | float


class RedisUnavailable(Exception):
    """No answer: connection refused or lost, or the deadline passed."""


class RedisReplyError(Exception):
    """Redis answered with an error (`-ERR ...`)."""


@dataclass(frozen=True, slots=True)
class RedisAddress:
    host: str
    port: int
    db: int
    password: str | None
    username: str | None

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", ""):
            raise ValueError("only redis:// URLs are supported (no TLS)")
        db = parts.path.strip("/")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 6379,
            db=int(db) if db else 0,
            password=unquote(parts.password) if parts.password else None,
            username=unquote(parts.username) if parts.username else None,
        )


def encode(args: Sequence[Arg]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


async def read_reply(reader: asyncio.StreamReader) -> Any:
    line = await reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        return RedisReplyError(rest.decode(errors="replace"))
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = await reader.readexactly(n + 2)
        return data[:-2]
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None
        return [await read_reply(reader) for _ in range(n)]
    raise ConnectionError(f"unexpected reply type {kind!r}")


async def _open(addr: RedisAddress, deadline: float) -> tuple[asyncio.StreamReader, Any]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(addr.host, addr.port), deadline)
    hello: list[list[Arg]] = []
    if addr.password:
        hello.append(
            ["AUTH", addr.username, addr.password] if addr.username else ["AUTH", addr.password]
        )
    if addr.db:
        hello.append(["SELECT", addr.db])
    for cmd in hello:
        writer.write(encode(cmd))
        reply = await asyncio.wait_for(read_reply(reader), deadline)
        if isinstance(reply, RedisReplyError):
            writer.close()
            raise RedisUnavailable(f"redis refused {cmd[0]!s}: {reply}")
    return reader, writer


class _Incomplete(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def parse_reply(buf: bytes | bytearray, pos: int) -> tuple[Any, int]:
    """One reply from `buf` at `pos`, synchronously: (value, position after it). Raises
    _Incomplete when the buffer ends inside it, ConnectionError on bytes that are not RESP."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _Incomplete
    kind, rest = buf[pos : pos + 1], bytes(buf[pos + 1 : end])
    pos = end + 2
    if kind == b"+":
        return rest, pos
    if kind == b"-":
        return RedisReplyError(rest.decode(errors="replace")), pos
    if kind == b":":
        return int(rest), pos
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None, pos
        if len(buf) < pos + n + 2:
            raise _Incomplete
        return bytes(buf[pos : pos + n]), pos + n + 2
    if kind == b"*":
        n = int(rest)
        if n < 0:
            return None, pos
        items = []
        for _ in range(n):
            item, pos = parse_reply(buf, pos)
            items.append(item)
        return items, pos
    raise ConnectionError(f"unexpected reply type {bytes(kind)!r}")


class _RespProtocol(asyncio.Protocol):
    """Replies parsed as bytes arrive, each handed to the oldest waiting future: no reader
    task and no stream coroutine per reply element (a limits check is two commands)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.buf = bytearray()
        self.lost: Callable[[Exception], None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                reply, pos = parse_reply(buf, pos)
                if not self.pending:
                    raise ConnectionError("reply without a request")
                fut = self.pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except _Incomplete:
            pass
        except (ConnectionError, ValueError) as exc:
            self._fail(RedisUnavailable(repr(exc)))
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisUnavailable(repr(exc) if exc else "redis closed the connection"))

    def _fail(self, exc: Exception) -> None:
        lost, self.lost = self.lost, None
        if lost is not None:
            lost(exc)  # the client forgets this connection (once)
        pending, self.pending = self.pending, deque()
        for fut in pending:
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def call(self, args: Sequence[Arg]) -> asyncio.Future[Any]:
        assert self.transport is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending.append(fut)
        self.transport.write(encode(args))
        return fut


async def _open_protocol(addr: RedisAddress, limit: float) -> _RespProtocol:
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(_RespProtocol, addr.host, addr.port), limit
    )
    hello: list[list[Arg]] = []
    if addr.password:
        hello.append(
            ["AUTH", addr.username, addr.password] if addr.username else ["AUTH", addr.password]
        )
    if addr.db:
        hello.append(["SELECT", addr.db])
    try:
        for cmd in hello:
            reply = await asyncio.wait_for(proto.call(cmd), limit)
            if isinstance(reply, RedisReplyError):
                raise RedisUnavailable(f"redis refused {cmd[0]!s}: {reply}")
    except BaseException:
        if proto.transport is not None:
            proto.transport.close()
        raise
    return proto


class Script:
    """A Lua script run with EVALSHA (EVAL once when the server does not know it yet)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis's script id


class Redis:
    def __init__(self, url: str, *, timeout: float = 0.5, retry_seconds: float = 1.0) -> None:
        self._addr = RedisAddress.parse(url)
        self._timeout = timeout
        self._retry = retry_seconds
        self._conn: _RespProtocol | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._down_until = 0.0

    @property
    def connected(self) -> bool:
        return self._conn is not None

    async def _connect(self) -> None:
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        if time.monotonic() < self._down_until:
            raise RedisUnavailable("redis is down; not retrying yet")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connecting = fut
        try:
            conn = await _open_protocol(self._addr, self._timeout)
        except (OSError, TimeoutError, RedisUnavailable) as exc:
            self._down_until = time.monotonic() + self._retry
            err = exc if isinstance(exc, RedisUnavailable) else RedisUnavailable(repr(exc))
            fut.set_exception(err)
            fut.exception()  # retrieved: waiters re-raise it themselves
            raise err from None
        finally:
            self._connecting = None
        conn.lost = lambda exc: self._broken(conn, exc)
        self._conn = conn
        fut.set_result(None)

    def _broken(self, conn: _RespProtocol, exc: Exception) -> None:
        if self._conn is conn:
            self._conn = None
            self._down_until = time.monotonic() + self._retry
            conn._fail(exc)

    async def execute(self, *args: Arg) -> Any:
        if self._conn is None:
            await self._connect()
        conn = self._conn
        if conn is None:
            raise RedisUnavailable("redis connection lost")
        fut = conn.call(args)
        timer = asyncio.get_running_loop().call_later(self._timeout, self._expire, conn, fut)
        try:
            reply = await fut
        finally:
            timer.cancel()
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    def _expire(self, conn: _RespProtocol, fut: asyncio.Future[Any]) -> None:
        if not fut.done():
            # A reply this late means a stuck server or network: treat the connection as lost.
            self._broken(conn, RedisUnavailable("redis did not answer in time"))

    async def evalsha(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    def evalsha_soon(
        self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]
    ) -> asyncio.Future[Any] | None:
        """Send now, without waiting for the reply nor a task to wait for it: the reply (or
        the error) lands on the returned future. None if not connected. No timer of its own:
        a stuck connection is found by the next awaited command's deadline, which fails every
        pending reply with it."""
        conn = self._conn
        if conn is None:
            return None
        fut = conn.call(("EVALSHA", script.sha, len(keys), *keys, *args))
        out: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def landed(f: asyncio.Future[Any]) -> None:
            reply = None if f.cancelled() or f.exception() else f.result()
            if isinstance(reply, RedisReplyError) and str(reply).startswith("NOSCRIPT"):
                # The server forgot the script (restart, SCRIPT FLUSH): send it whole once.
                conn = self._conn
                if conn is None:
                    out.set_exception(RedisUnavailable("redis connection lost"))
                    return
                again = conn.call(("EVAL", script.source, len(keys), *keys, *args))
                again.add_done_callback(lambda g: _copy(g, out))
                return
            _copy(f, out)

        fut.add_done_callback(landed)
        return out

    async def close(self) -> None:
        if self._conn is not None:
            self._broken(self._conn, RedisUnavailable("client closed"))


def _copy(src: asyncio.Future[Any], dst: asyncio.Future[Any]) -> None:
    """A reply future's outcome onto another; a RESP error reply becomes its exception."""
    if dst.done():
        return
    if src.cancelled():
        dst.cancel()
        return
    exc = src.exception()
    if exc is None:
        reply = src.result()
        exc = reply if isinstance(reply, RedisReplyError) else None
        if exc is None:
            dst.set_result(reply)
            return
    dst.set_exception(exc)


class Subscriber:
    """Messages published on one channel, reconnecting forever. Yields ("up", b"") each time it
    (re)subscribes and ("down", b"") when the connection drops (messages may have been missed
    in between), and ("message", data) for each message."""

    def __init__(self, url: str, channel: str, *, timeout: float = 2.0, retry: float = 0.5):
        self._addr = RedisAddress.parse(url)
        self._channel = channel
        self._timeout = timeout
        self._retry = retry

    async def events(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            writer = None
            up = False
            try:
                reader, writer = await _open(self._addr, self._timeout)
                writer.write(encode(["SUBSCRIBE", self._channel]))
                await writer.drain()
                while True:
                    reply = await read_reply(reader)
                    if not isinstance(reply, list) or len(reply) < 3:
                        continue
                    if reply[0] == b"subscribe":
                        up = True
                        yield "up", b""
                    elif reply[0] == b"message":
                        yield "message", reply[2]
            except (
                OSError,
                ConnectionError,
                TimeoutError,
                RedisUnavailable,
                ValueError,
                asyncio.IncompleteReadError,
            ) as exc:
                if up:
                    log.warning("redis subscription lost (%r); reconnecting", exc)
            finally:
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.close()
            yield "down", b""
            await asyncio.sleep(self._retry)
