"""A raw HTTP/1.1 server on loopback whose replies are written byte for byte by the test:
for framings and breakages a real server never sends (malformed heads, chunk sizes, early
closes). Handlers get the request head and write; True keeps the connection for the next one.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from support.servers import free_socket

# A reply handler gets the request head and answers by writing; True keeps the connection.
Handler = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class RawServer:
    """Answers each request with its handler; counts connections, keeps the request heads."""

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.heads: list[bytes] = []
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}/v1/x"

    async def start(self) -> RawServer:
        sock = free_socket()
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._serve, sock=sock, ssl=self.tls)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                keep = await self.handler(head, reader, writer)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


def replies(*answers: bytes, keep: bool = True) -> Handler:
    """Write the given bytes (one answer per request, the last one repeated)."""
    sent = 0

    async def handler(head: bytes, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        nonlocal sent
        w.write(answers[min(sent, len(answers) - 1)])
        sent += 1
        return keep

    return handler


def sized(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def serve(opened: list[RawServer], handler: Handler, **kw: Any) -> RawServer:
    server = await RawServer(handler, **kw).start()
    opened.append(server)
    return server
