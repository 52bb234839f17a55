"""Edges of the guarded fetcher not reached through its servers: URLs that cannot be parsed or
name no host, a redirect to an unparseable target, resolver answers with duplicates or nothing,
a public address vetted and pinned without a connection, the pinned resolver itself, and inline
data larger than its cap only once decoded."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from llmage.net.fetch import (
    FetchFailed,
    FetchRejected,
    GuardedFetcher,
    _PinnedResolver,
    decode_data_uri,
)
from support.servers import free_socket


def fetcher(*allow: str) -> GuardedFetcher:
    return GuardedFetcher(max_bytes=1000, timeout=30, allow_hosts=frozenset(allow))


@pytest.mark.parametrize(
    ("url", "why"),
    [("http://[::1", "cannot be parsed"), ("http:///just/a/path", "has no host")],
)
async def test_urls_without_a_usable_host_are_refused(url: str, why: str) -> None:
    with pytest.raises(FetchRejected, match=why):
        await fetcher().fetch(url)


@pytest.fixture
async def bad_redirect() -> AsyncIterator[int]:
    async def redirect(request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": "http://[::1/elsewhere"})

    app = web.Application()
    app.router.add_get("/go", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = free_socket()
    await web.SockSite(runner, sock).start()
    yield sock.getsockname()[1]
    await runner.cleanup()


async def test_a_redirect_to_an_unparseable_target_is_refused(bad_redirect: int) -> None:
    with pytest.raises(FetchRejected, match="redirect target cannot be parsed"):
        await fetcher(f"127.0.0.1:{bad_redirect}").fetch(f"http://127.0.0.1:{bad_redirect}/go")


def addrinfo(*ips: str) -> list[tuple[Any, ...]]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, 80)) for ip in ips]


async def test_resolved_addresses_are_vetted_once_each_and_pinned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    async def answers(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        return addrinfo("93.184.215.14", "93.184.215.14", "1.1.1.1")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", answers)
    resolver = _PinnedResolver()
    await fetcher()._vet(URL("https://media.example/a.png"), resolver)
    want = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("1.1.1.1")]
    assert resolver.pinned == {"media.example": want}
    (first, second) = await resolver.resolve("MEDIA.example", 443)
    assert (first["host"], second["host"], first["port"]) == ("93.184.215.14", "1.1.1.1", 443)
    with pytest.raises(OSError, match="not vetted"):
        await resolver.resolve("other.example", 443)
    await resolver.close()
    assert resolver.pinned == {}


async def test_a_public_address_is_pinned_as_it_is() -> None:
    resolver = _PinnedResolver()
    await fetcher()._vet(URL("http://1.1.1.1:8080/x"), resolver)
    assert resolver.pinned == {"1.1.1.1": [ipaddress.ip_address("1.1.1.1")]}


async def test_a_resolver_answer_with_no_address_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    async def nothing(host: str, port: int, **kw: Any) -> list[tuple[Any, ...]]:
        return []

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", nothing)
    with pytest.raises(FetchFailed, match="cannot be resolved"):
        await fetcher()._vet(URL("http://media.example/"), _PinnedResolver())


def test_inline_data_over_the_cap_once_decoded() -> None:
    # 4 base64 characters pass the size estimate's slack for 2 bytes; they decode to 3.
    with pytest.raises(FetchRejected, match="larger than 2 bytes"):
        decode_data_uri("data:application/octet-stream;base64,AAAA", max_bytes=2)
    assert decode_data_uri("AAA=", max_bytes=2)[0] == b"\x00\x00"
