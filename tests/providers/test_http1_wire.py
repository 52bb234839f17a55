"""The upstream HTTP/1.1 client on the wire, against raw loopback servers written here: every
body framing (content-length, chunked with extensions and trailers, close-delimited), broken
answers (malformed status line, header or chunk size, an upgrade, an early close), oversized
bodies, TLS with a certificate made in the test (trusted, and refused when not), refused
connections and connect timeouts, and which kept-alive connections are reused.

Nothing here measures time: waits are on events, and timeouts fire from timers the test sets.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from llmage.domain.errors import UpstreamKind
from llmage.providers.http1 import (
    Http1Pool,
    HttpDeadline,
    HttpError,
    HttpStalled,
    HttpTimeout,
    _Conn,
)
from llmage.providers.transport import upstream_error
from support.rawhttp import RawServer, replies, serve, sized
from support.servers import free_socket

GUARD = 30.0  # only reached if the client hangs


def pool(**kw: Any) -> Http1Pool:
    options: dict[str, Any] = {"connect_timeout": 10.0, "read_timeout": 60.0}
    options.update(kw)
    return Http1Pool(**options)


@pytest.fixture
async def servers() -> AsyncIterator[list[RawServer]]:
    opened: list[RawServer] = []
    yield opened
    for server in opened:
        await server.stop()


async def get(p: Http1Pool, url: str, method: str = "GET", limit: int = 1 << 26) -> bytes:
    resp = await asyncio.wait_for(p.request(method, url, {"Accept": "*/*"}), GUARD)
    return await asyncio.wait_for(resp.read(limit), GUARD)


# -- body framing -------------------------------------------------------------------------------


async def test_content_length_bodies_reuse_one_connection(servers: list[RawServer]) -> None:
    up = await serve(servers, replies(sized(b'{"a": 1}')))
    p = pool()
    assert await get(p, up.url + "?page=1&q=a%20b") == b'{"a": 1}'
    assert await get(p, up.url) == b'{"a": 1}'
    assert up.connections == 1
    first = up.heads[0].split(b"\r\n")
    assert first[0] == b"GET /v1/x?page=1&q=a%20b HTTP/1.1"
    assert f"Host: 127.0.0.1:{up.port}".encode() in first and b"Accept: */*" in first
    await p.close()
    assert not p._idle


async def test_chunked_body_with_extensions_and_trailers(servers: list[RawServer]) -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
    )
    up = await serve(servers, replies(chunked))
    p = pool()
    assert await get(p, up.url) == b"hello world"
    assert await get(p, up.url) == b"hello world"  # the trailer ended it: the connection lives on
    assert up.connections == 1
    await p.close()


async def test_a_body_delimited_by_the_connection_closing(servers: list[RawServer]) -> None:
    up = await serve(servers, replies(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", keep=False))
    p = pool()
    assert await get(p, up.url) == b"until the end"
    assert await get(p, up.url) == b"until the end"
    assert up.connections == 2  # a closed connection is never pooled
    await p.close()


async def test_lines_and_events_of_a_stream(servers: list[RawServer]) -> None:
    body = b": comment\nevent: x\ndata: one\n\ndata:two\nretry: 5\ndata: tail"
    up = await serve(servers, replies(sized(body, extra="Content-Type: text/event-stream\r\n")))
    p = pool()
    resp = await p.request("GET", up.url, {})
    assert [e async for e in resp.events()] == [b"one", b"two", b"tail"]
    resp.release()
    resp.release()  # once is enough
    resp.close()  # after release the connection belongs to the pool: left alone
    assert len(p._idle[("http", "127.0.0.1", up.port)]) == 1
    await p.close()


async def test_a_large_body_pauses_reading_until_taken(servers: list[RawServer]) -> None:
    big = bytes(range(256)) * (3 << 12)  # 3 MiB: more than the client buffers unread
    up = await serve(servers, replies(sized(big)))
    p = pool()
    resp = await p.request("GET", up.url, {})
    assert await asyncio.wait_for(resp.read(), GUARD) == big
    assert not resp._conn.paused  # reading resumed once the buffer was taken
    await p.close()


async def test_an_unread_response_closes_its_connection(servers: list[RawServer]) -> None:
    up = await serve(servers, replies(sized(b"x" * 10)))
    p = pool()
    resp = await p.request("GET", up.url, {})
    resp.release()  # not read to its end: never pooled
    assert not p._idle.get(("http", "127.0.0.1", up.port))
    assert await get(p, up.url) == b"x" * 10
    assert up.connections == 2
    await p.close()


async def test_only_max_idle_connections_are_kept(servers: list[RawServer]) -> None:
    up = await serve(servers, replies(sized(b"ok")))
    p = pool(max_idle_per_host=1)
    first = await p.request("GET", up.url, {})
    second = await p.request("GET", up.url, {})  # the first is busy: a second connection
    assert await first.read() == b"ok" and await second.read() == b"ok"
    assert len(p._idle[("http", "127.0.0.1", up.port)]) == 1
    assert second._conn.transport is not None and second._conn.transport.is_closing()
    await p.close()


# -- broken answers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 abc OK\r\n\r\n", "malformed HTTP response"),
        (b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n", "malformed HTTP response"),
        (b"SMTP ready\r\n\r\n", "malformed HTTP response"),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
            b"Upgrade: websocket\r\n\r\n",
            "unexpected protocol upgrade",
        ),
        (b"", "connection closed before the response ended"),
        (b"HTTP/1.1 200 OK\r\nContent-", "connection closed before the response ended"),
    ],
)
async def test_a_broken_head_is_a_transport_error(
    servers: list[RawServer], answer: bytes, message: str
) -> None:
    up = await serve(servers, replies(answer, keep=False))
    p = pool()
    with pytest.raises(HttpError, match=message) as caught:
        await get(p, up.url, "POST")
    assert not isinstance(caught.value, HttpTimeout)
    await p.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX",
    ],
)
async def test_a_malformed_chunk_is_refused(servers: list[RawServer], answer: bytes) -> None:
    up = await serve(servers, replies(answer, keep=False))
    p = pool()
    resp = await p.request("GET", up.url, {})
    with pytest.raises(HttpError, match="malformed HTTP response"):
        await asyncio.wait_for(resp.read(), GUARD)
    await p.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a part",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    ],
)
async def test_an_early_close_mid_body_is_an_error(servers: list[RawServer], answer: bytes) -> None:
    up = await serve(servers, replies(answer, keep=False))
    p = pool()
    resp = await p.request("GET", up.url, {})
    with pytest.raises(HttpError, match="closed before the response ended"):
        await asyncio.wait_for(resp.read(), GUARD)
    resp2 = await p.request("GET", up.url, {})  # the same through the streaming reader
    with pytest.raises(HttpError, match="closed before the response ended"):
        async for _ in resp2.chunks():
            pass
    await p.close()


async def test_an_oversized_body_is_refused(servers: list[RawServer]) -> None:
    up = await serve(servers, replies(sized(b"y" * 64)))
    p = pool()
    with pytest.raises(HttpError, match="too large"):
        await get(p, up.url, limit=63)
    assert not p._idle.get(("http", "127.0.0.1", up.port))  # that connection was closed
    assert await get(p, up.url, limit=64) == b"y" * 64
    await p.close()


# -- kept-alive connections ---------------------------------------------------------------------


async def test_a_pooled_connection_the_server_closed_is_not_used(
    servers: list[RawServer],
) -> None:
    close_now = asyncio.Event()

    async def answer_then_close(
        head: bytes, r: asyncio.StreamReader, w: asyncio.StreamWriter
    ) -> bool:
        w.write(sized(b"ok"))
        await w.drain()
        await close_now.wait()  # kept alive until the test says: then closed, unannounced
        return False

    up = await serve(servers, answer_then_close)
    p = pool()
    assert await get(p, up.url, "POST") == b"ok"
    (conn,) = p._idle[("http", "127.0.0.1", up.port)]
    close_now.set()
    while not conn.closed:  # the client sees the server's close
        await asyncio.wait_for(conn.wait(GUARD), GUARD)
    assert await get(p, up.url, "POST") == b"ok"  # on a fresh connection, sent once
    assert up.connections == 2 and len(up.heads) == 2
    await p.close()


async def test_stale_keep_alive_get_is_resent_post_never(servers: list[RawServer]) -> None:
    async def drop_second(head: bytes, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        if len(up.heads) % 2 == 0:
            return False  # read the request, close unanswered: the connection had gone stale
        w.write(sized(b"ok"))
        return True

    up = await serve(servers, drop_second)
    p = pool()
    assert await get(p, up.url) == b"ok"
    assert await get(p, up.url) == b"ok"  # the reused connection died: asked again, fresh
    assert [h.split(b" ")[0] for h in up.heads] == [b"GET", b"GET", b"GET"]
    with pytest.raises(HttpError, match="closed before the response ended"):
        await get(p, up.url, "POST")  # the reused one is dropped: the POST is not resent
    assert [h.split(b" ")[0] for h in up.heads] == [b"GET"] * 3 + [b"POST"]
    assert up.connections == 2
    await p.close()


# -- connecting ---------------------------------------------------------------------------------


async def test_unsupported_urls_are_refused() -> None:
    p = pool()
    for url in ("ftp://example.com/x", "http:///nohost", "mailto:a@b"):
        with pytest.raises(HttpError, match="unsupported upstream URL"):
            await p.request("GET", url, {})


async def test_a_refused_connection_is_unreachable() -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # nobody listens there now
    with pytest.raises(HttpError, match="upstream unreachable: ConnectionRefusedError"):
        await pool().request("POST", f"http://127.0.0.1:{port}/v1", {}, b"{}")


async def test_a_passed_deadline_never_connects() -> None:
    with pytest.raises(HttpDeadline):
        await pool().request("GET", "http://127.0.0.1:9/", {}, deadline=time.monotonic() - 1)


@pytest.mark.parametrize(("connect", "deadline", "error"), [
    (0.05, None, "upstream connect timed out"),
    (60.0, 0.05, "exceeded its deadline"),
])  # fmt: skip
async def test_a_connect_that_never_completes_times_out(
    monkeypatch: pytest.MonkeyPatch, connect: float, deadline: float | None, error: str
) -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[Any] = loop.create_future()

    async def hang(*args: Any, **kwargs: Any) -> Any:
        return await never  # as a SYN nobody answers

    monkeypatch.setattr(loop, "create_connection", hang)
    end = time.monotonic() + deadline if deadline is not None else float("inf")
    with pytest.raises(HttpTimeout, match=error) as caught:
        await asyncio.wait_for(
            pool(connect_timeout=connect).request("GET", "http://10.255.255.1/", {}, deadline=end),
            GUARD,
        )
    assert isinstance(caught.value, HttpDeadline) is (deadline is not None)


# -- TLS ----------------------------------------------------------------------------------------


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "llmage test upstream")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_tls_to_a_trusted_certificate_and_refused_otherwise(
    servers: list[RawServer], tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    up = await serve(servers, replies(sized(b"secret ok")), tls=server_tls)
    trusting = pool(ssl_context=ssl.create_default_context(cafile=str(cert)))
    assert await get(trusting, up.url) == b"secret ok"
    assert await get(trusting, up.url) == b"secret ok"
    assert up.connections == 1  # kept alive over TLS too
    await trusting.close()
    with pytest.raises(HttpError, match="upstream unreachable: SSLCertVerificationError"):
        await pool().request("GET", up.url, {})  # the system's trust store knows it not


# -- the protocol object alone ------------------------------------------------------------------


class RecordingTransport:
    """Stands in for a socket transport: records flow control."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def close(self) -> None:
        self.calls.append("close")


def test_unread_bytes_past_the_limit_pause_the_socket_until_taken() -> None:
    conn = _Conn()
    transport = RecordingTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    piece = b"p" * (1 << 19)
    size = 3 * len(piece)
    conn.data_received(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    for _ in range(3):
        conn.data_received(piece)
    assert transport.calls == ["pause"] and conn.paused  # once, past 1 MiB unread
    assert conn.take() == piece * 3
    assert transport.calls == ["pause", "resume"] and conn.complete
    assert conn.take() == b""  # nothing more: no second resume
    assert transport.calls == ["pause", "resume"]


async def test_a_timer_that_fires_after_the_wake_leaves_it_alone() -> None:
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    _Conn._expire(fut, "upstream read timed out")  # no InvalidStateError
    assert fut.result() is None


async def test_a_deadline_passed_on_a_pooled_connection(servers: list[RawServer]) -> None:
    up = await serve(servers, replies(sized(b"ok")))
    p = pool()
    assert await get(p, up.url) == b"ok"
    with pytest.raises(HttpDeadline):  # no connect to refuse it: the first wait does
        await p.request("GET", up.url, {}, deadline=time.monotonic() - 1)
    await p.close()


async def test_a_stream_ending_with_a_newline_has_no_tail(servers: list[RawServer]) -> None:
    up = await serve(servers, replies(sized(b"data: a\n\ndata: b\n")))
    p = pool()
    resp = await p.request("GET", up.url, {})
    assert [line async for line in resp.lines()] == [b"data: a", b"", b"data: b"]
    await p.close()


@pytest.mark.parametrize(
    ("exc", "answered", "kind", "message"),
    [
        (HttpStalled("x"), True, UpstreamKind.TIMEOUT, "Upstream stream stalled"),
        (HttpDeadline("x"), False, UpstreamKind.TIMEOUT, "within the deadline"),
        (HttpTimeout("x"), False, UpstreamKind.TIMEOUT, "Upstream timed out"),
        (HttpError("x"), True, UpstreamKind.TIMEOUT, "broke mid-response"),
        (HttpError("x"), False, UpstreamKind.RETRYABLE, "Upstream unreachable"),
    ],
)
def test_transport_failures_map_to_upstream_errors(
    exc: HttpError, answered: bool, kind: UpstreamKind, message: str
) -> None:
    err = upstream_error(exc, answered=answered)
    assert err.kind is kind and message in err.message
