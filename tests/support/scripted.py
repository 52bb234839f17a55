"""A raw HTTP/1.1 upstream on loopback whose every connection follows a script: for what no real
server does on purpose (answer a byte at a time forever, close a kept-alive connection after
reading a request, never answer), and to see exactly when the client leaves.

Signals are threading events, so a test in another thread than the server's loop can wait on
them with a timeout: `got_request` (a whole request arrived), `client_left` (a connection was
closed by the client while the script waited on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from support.servers import free_socket


@dataclass
class Request:
    head: bytes
    body: bytes
    connection: int  # which connection (0, 1, ...) it came on

    @property
    def method(self) -> str:
        return self.head.split(b" ", 1)[0].decode()

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


# A script answers one request; True keeps the connection for the next one.
Script = Callable[["ScriptedUpstream", Request, asyncio.StreamReader, asyncio.StreamWriter],
                  Awaitable[bool]]  # fmt: skip


@dataclass
class ScriptedUpstream:
    script: Script
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    got_request: threading.Event = field(default_factory=threading.Event)
    client_left: threading.Event = field(default_factory=threading.Event)
    port: int = 0
    _server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    def reset(self) -> None:
        self.requests.clear()
        self.got_request.clear()
        self.client_left.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        number = self.connections
        self.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                req = Request(head, b"", number)
                length = int(req.header("content-length") or 0)
                req.body = await reader.readexactly(length) if length else b""
                self.requests.append(req)
                self.got_request.set()
                if not await self.script(self, req, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.client_left.set()
        except asyncio.CancelledError:
            pass  # the server is shutting down
        finally:
            writer.close()

    # -- building blocks for scripts -----------------------------------------------------------

    async def until_client_leaves(self, reader: asyncio.StreamReader) -> None:
        """Wait for EOF from the client, then signal it."""
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        self.client_left.set()

    async def trickle(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        piece: bytes,
        interval: float,
    ) -> None:
        """Send `piece` as one chunk every `interval` seconds, forever, until the client
        leaves (then signal it)."""
        while True:
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            try:
                await writer.drain()
                if not await asyncio.wait_for(reader.read(1024), interval):
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                break
        self.client_left.set()


def head(status: int = 200, content_type: str = "application/json", **headers: str) -> bytes:
    """A chunked response head."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}", "Transfer-Encoding: chunked"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def whole(
    status: int, body: bytes, content_type: str = "application/json", **headers: str
) -> bytes:
    """A complete keep-alive response."""
    lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
