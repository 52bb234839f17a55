"""A small Redis client (RESP2 over asyncio): what the limits and the invalidation bus need.

One connection per client, auto-pipelined: every command is written at once and its reply
future queued; one reader task resolves replies in order. Concurrent requests therefore share
one socket and one round trip each, with no pool and no per-command task. Every command has a
short deadline; a failure closes the connection, fails what was pending and makes the client
refuse new commands for `retry_seconds` (callers fall back at once instead of each waiting out
a connect timeout while Redis is down). `Subscriber` holds a separate pub/sub connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any
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
        self._writer: Any = None
        self._reader_task: asyncio.Task[None] | None = None
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._connecting: asyncio.Future[None] | None = None
        self._down_until = 0.0

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def _connect(self) -> None:
        if self._connecting is not None:
            await asyncio.shield(self._connecting)
            return
        if time.monotonic() < self._down_until:
            raise RedisUnavailable("redis is down; not retrying yet")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._connecting = fut
        try:
            reader, writer = await _open(self._addr, self._timeout)
        except (OSError, TimeoutError, RedisUnavailable) as exc:
            self._down_until = time.monotonic() + self._retry
            err = exc if isinstance(exc, RedisUnavailable) else RedisUnavailable(repr(exc))
            fut.set_exception(err)
            fut.exception()  # retrieved: waiters re-raise it themselves
            raise err from None
        finally:
            self._connecting = None
        self._writer = writer
        self._reader_task = asyncio.create_task(self._read(reader, writer), name="redis-reader")
        fut.set_result(None)

    async def _read(self, reader: asyncio.StreamReader, writer: Any) -> None:
        try:
            while True:
                reply = await read_reply(reader)
                if not self._pending:
                    raise ConnectionError("reply without a request")
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(reply)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            self._broken(writer, RedisUnavailable(repr(exc)))

    def _broken(self, writer: Any, exc: Exception) -> None:
        if self._writer is writer:
            self._writer = None
            self._down_until = time.monotonic() + self._retry
            with contextlib.suppress(Exception):
                writer.close()
            if self._reader_task is not None and self._reader_task is not asyncio.current_task():
                self._reader_task.cancel()
            pending, self._pending = self._pending, deque()
            for fut in pending:
                if not fut.done():
                    fut.set_exception(exc)

    async def execute(self, *args: Arg) -> Any:
        if self._writer is None:
            await self._connect()
        writer = self._writer
        if writer is None:
            raise RedisUnavailable("redis connection lost")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append(fut)
        writer.write(encode(args))
        timer = loop.call_later(self._timeout, self._expire, writer, fut)
        try:
            reply = await fut
        finally:
            timer.cancel()
        if isinstance(reply, RedisReplyError):
            raise reply
        return reply

    def _expire(self, writer: Any, fut: asyncio.Future[Any]) -> None:
        if not fut.done():
            # A reply this late means a stuck server or network: treat the connection as lost.
            self._broken(writer, RedisUnavailable("redis did not answer in time"))

    async def evalsha(self, script: Script, keys: Sequence[Arg], args: Sequence[Arg]) -> Any:
        try:
            return await self.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except RedisReplyError as exc:
            if not str(exc).startswith("NOSCRIPT"):
                raise
        return await self.execute("EVAL", script.source, len(keys), *keys, *args)

    async def close(self) -> None:
        if self._writer is not None:
            self._broken(self._writer, RedisUnavailable("client closed"))
        if self._reader_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader_task
            self._reader_task = None


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
