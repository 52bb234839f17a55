"""The guarded fetcher: SSRF rules, DNS pinning, redirects, caps, timeouts — against real
aiohttp servers on loopback (reachable only through the operator allow-list)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from llmage.net.fetch import FetchFailed, FetchRejected, GuardedFetcher, address_problem
from support.servers import free_socket

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200


@dataclass
class LoopServer:
    port: int
    runner: web.AppRunner
    hosts: list[str] = field(default_factory=list)
    hooks: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def allow(self) -> frozenset[str]:
        return frozenset({f"127.0.0.1:{self.port}"})


async def start_server() -> LoopServer:
    server: LoopServer

    async def png(request: web.Request) -> web.StreamResponse:
        server.hosts.append(request.headers.get("Host", ""))
        return web.Response(body=PNG, content_type="image/png")

    async def octet(request: web.Request) -> web.StreamResponse:
        return web.Response(body=PNG, content_type="application/octet-stream")

    async def big(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 5000, content_type="application/octet-stream")

    async def big_chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(50):
            await resp.write(b"y" * 100)
        await resp.write_eof()
        return resp

    # Both outlast any test: only the fetcher's own deadline can end a fetch of them.
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(60)
        return web.Response(body=PNG)

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        for _ in range(600):  # each byte arrives promptly, but the whole takes a minute
            await resp.write(b"z")
            await asyncio.sleep(0.1)
        await resp.write_eof()
        return resp

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(request.query["to"])

    async def loop(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/loop")

    async def missing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404, text="nope")

    async def hook(request: web.Request) -> web.StreamResponse:
        server.hooks.append((await request.read(), dict(request.headers)))
        return web.Response(status=204)

    async def hook_redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPTemporaryRedirect("http://169.254.169.254/")

    app = web.Application()
    app.router.add_get("/png", png)
    app.router.add_get("/octet", octet)
    app.router.add_get("/big", big)
    app.router.add_get("/big-chunked", big_chunked)
    app.router.add_get("/slow", slow)
    app.router.add_get("/trickle", trickle)
    app.router.add_get("/redirect", redirect)
    app.router.add_get("/loop", loop)
    app.router.add_get("/missing", missing)
    app.router.add_post("/hook", hook)
    app.router.add_post("/hook-redirect", hook_redirect)
    # On cleanup, handlers still serving /slow or /trickle are cancelled, not waited for.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    sock = free_socket()
    await web.SockSite(runner, sock).start()
    server = LoopServer(sock.getsockname()[1], runner)
    return server


@pytest.fixture(scope="module")
async def srv() -> AsyncIterator[LoopServer]:
    server = await start_server()
    yield server
    await server.runner.cleanup()


@pytest.fixture(scope="module")
async def other() -> AsyncIterator[LoopServer]:
    """A second loopback server that is NOT on the allow-list."""
    server = await start_server()
    yield server
    await server.runner.cleanup()


def fetcher_for(
    srv: LoopServer,
    *,
    max_bytes: int = 1000,
    timeout: float = 5.0,
    extra: frozenset[str] = frozenset(),
) -> GuardedFetcher:
    return GuardedFetcher(max_bytes=max_bytes, timeout=timeout, allow_hosts=srv.allow | extra)


# --- accepted -------------------------------------------------------------------------------


async def test_allowed_loopback_host_is_fetched(srv: LoopServer) -> None:
    got = await fetcher_for(srv).fetch(f"{srv.base}/png")
    assert got.data == PNG
    assert got.content_type == "image/png"
    assert got.final_url == f"{srv.base}/png"


async def test_octet_stream_is_sniffed(srv: LoopServer) -> None:
    got = await fetcher_for(srv).fetch(f"{srv.base}/octet")
    assert got.content_type == "image/png"


async def test_redirect_within_allowed_host(srv: LoopServer) -> None:
    got = await fetcher_for(srv).fetch(f"{srv.base}/redirect?to=/png")
    assert got.data == PNG and got.final_url == f"{srv.base}/png"


# --- rejected before any connection ---------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.0.0.1:8080/admin", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00::1]/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://224.0.0.1/", "multicast"),
        ("http://localhost/", "loopback"),
        ("http://LOCALHOST:8000/", "loopback"),
        ("http://app.localhost/", "loopback"),
        ("http://2130706433/", "loopback"),  # 127.0.0.1 as one decimal number
        ("http://0x7f.1/", "loopback"),
    ],
)
async def test_non_public_addresses_are_rejected(srv: LoopServer, url: str, why: str) -> None:
    with pytest.raises(FetchRejected, match=why):
        await fetcher_for(srv).fetch(url)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/x.png",
        "gopher://example.com/",
        "data:,x",
        "javascript:alert(1)",
        "//example.com/x.png",
        "not a url",
    ],
)
async def test_only_http_and_https(srv: LoopServer, url: str) -> None:
    with pytest.raises(FetchRejected):
        await fetcher_for(srv).fetch(url)


async def test_userinfo_is_rejected_without_echoing_it(srv: LoopServer) -> None:
    for url in (
        f"http://admin:hunter2@127.0.0.1:{srv.port}/png",
        "https://user:s3cr3t-token@example.com/x.png",
        "http://token@example.com/",
    ):
        with pytest.raises(FetchRejected) as info:
            await fetcher_for(srv).fetch(url)
        assert "credentials" in str(info.value)
        assert "hunter2" not in str(info.value) and "s3cr3t" not in str(info.value)


async def test_allow_list_is_per_port(srv: LoopServer) -> None:
    with pytest.raises(FetchRejected, match="loopback"):
        await fetcher_for(srv).fetch(f"http://127.0.0.1:{srv.port + 1}/png")


async def test_hostname_resolving_to_loopback(
    srv: LoopServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = {
        "evil.example": ["127.0.0.1"],
        "mixed.example": ["93.184.216.34", "10.1.2.3"],  # one bad address is enough
        "v6.example": ["::1"],
    }

    async def fake_getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in answers[host]
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    for host, why in (
        ("evil.example", "loopback"),
        ("mixed.example", "private"),
        ("v6.example", "loopback"),
    ):
        with pytest.raises(FetchRejected, match=why):
            await fetcher_for(srv).fetch(f"http://{host}/img.png")


async def test_connection_goes_to_the_vetted_address(
    srv: LoopServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers loopback when checked, then a different address.
    The fetcher must connect to what it checked and never ask DNS a second time."""
    calls: list[str] = []

    async def rebinding(host: str, port: int, **_: Any) -> list[Any]:
        calls.append(host)
        addr = "127.0.0.1" if len(calls) == 1 else "10.255.255.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", rebinding)
    fetcher = fetcher_for(srv, extra=frozenset({f"pinned.test:{srv.port}"}))
    got = await fetcher.fetch(f"http://pinned.test:{srv.port}/png")
    assert got.data == PNG
    assert calls == ["pinned.test"]
    assert srv.hosts[-1] == f"pinned.test:{srv.port}"  # Host header is the real name


async def test_unresolvable_host_fails(srv: LoopServer) -> None:
    with pytest.raises(FetchFailed, match="cannot be resolved"):
        await fetcher_for(srv).fetch("http://no-such-host.invalid/x.png")


# --- redirects ------------------------------------------------------------------------------


async def test_redirect_to_private_address_is_rejected(srv: LoopServer, other: LoopServer) -> None:
    fetcher = fetcher_for(srv)
    for target in (
        f"{other.base}/png",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://localhost/",
    ):
        with pytest.raises(FetchRejected):
            await fetcher.fetch(f"{srv.base}/redirect?to={target}")
    assert other.hosts == []  # the unlisted server was never contacted


async def test_redirect_to_other_scheme_is_rejected(srv: LoopServer) -> None:
    with pytest.raises(FetchRejected, match="http and https"):
        await fetcher_for(srv).fetch(f"{srv.base}/redirect?to=file:///etc/passwd")


async def test_too_many_redirects(srv: LoopServer) -> None:
    with pytest.raises(FetchRejected, match="redirects"):
        await fetcher_for(srv).fetch(f"{srv.base}/loop")


# --- caps and failures ----------------------------------------------------------------------


async def test_oversize_bodies_are_cut(srv: LoopServer) -> None:
    fetcher = fetcher_for(srv, max_bytes=1000)
    with pytest.raises(FetchRejected, match="larger than 1000"):
        await fetcher.fetch(f"{srv.base}/big")  # declared Content-Length
    with pytest.raises(FetchRejected, match="larger than 1000"):
        await fetcher.fetch(f"{srv.base}/big-chunked")  # no length: counted while streaming
    assert len((await fetcher_for(srv, max_bytes=5000).fetch(f"{srv.base}/big")).data) == 5000


async def test_slow_servers_time_out(srv: LoopServer) -> None:
    """A total deadline, not an idle one: the trickle never pauses for as long as the timeout."""
    fetcher = fetcher_for(srv, timeout=0.5)
    for path in ("/slow", "/trickle"):
        with pytest.raises(FetchFailed, match="timed out"):
            await fetcher.fetch(f"{srv.base}{path}")


async def test_http_errors_and_refused_connections(srv: LoopServer) -> None:
    with pytest.raises(FetchFailed, match="HTTP 404"):
        await fetcher_for(srv).fetch(f"{srv.base}/missing")
    closed = free_socket()
    port = closed.getsockname()[1]
    closed.close()
    fetcher = GuardedFetcher(1000, 5, frozenset({f"127.0.0.1:{port}"}))
    with pytest.raises(FetchFailed, match="connection failed"):
        await fetcher.fetch(f"http://127.0.0.1:{port}/secret?token=abc")


# --- webhooks -------------------------------------------------------------------------------


async def test_post_json(srv: LoopServer) -> None:
    fetcher = fetcher_for(srv)
    status = await fetcher.post_json(f"{srv.base}/hook", b'{"ok":true}', {"X-Signature": "abc"})
    assert status == 204
    body, headers = srv.hooks[-1]
    assert body == b'{"ok":true}'
    assert headers["Content-Type"] == "application/json" and headers["X-Signature"] == "abc"
    # A redirect is reported, not followed (it points at the metadata service here).
    assert await fetcher.post_json(f"{srv.base}/hook-redirect", b"{}", {}) == 307
    for url in ("http://169.254.169.254/", "http://127.0.0.1:1/", "file:///tmp/x"):
        with pytest.raises(FetchRejected):
            await fetcher.post_json(url, b"{}", {})


# --- address classification -----------------------------------------------------------------


@pytest.mark.parametrize(
    "addr",
    [
        "127.0.0.1",
        "127.255.0.1",
        "10.1.1.1",
        "172.31.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.127.255.254",
        "0.0.0.0",  # noqa: S104 - an address to classify, not a bind
        "0.1.2.3",
        "224.0.0.251",
        "239.1.1.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.51.100.7",
        "203.0.113.9",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "fec0::1",
        "::ffff:10.0.0.1",
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2002:a00:1::1",
        "2001:db8::1",
        "100::1",
    ],
)
def test_blocked_addresses(addr: str) -> None:
    assert address_problem(ipaddress.ip_address(addr)) is not None


@pytest.mark.parametrize(
    "addr",
    [
        "8.8.8.8",
        "93.184.216.34",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
    ],
)
def test_public_addresses(addr: str) -> None:
    assert address_problem(ipaddress.ip_address(addr)) is None
