"""The pieces every adapter stands on: request/reply values, multipart, Retry-After, typed
credentials, the Upstream seam (real HTTP on loopback: refused connections are known not sent,
a silent upstream is a timeout whose create may have arrived, oversized replies are refused),
error-kind properties and typed usage."""

from __future__ import annotations

import asyncio
import socket
from email.parser import BytesParser
from email.policy import HTTP

import pytest
from aiohttp import web

from llmage.domain.credentials import (
    ApiKey,
    KeyPair,
    KeyPool,
    describe,
    dump_secret,
    from_fields,
    load_secret,
    pick,
    secret_values,
)
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.usage import Usage
from llmage.providers.transport import Transport
from llmage.providers.upstream import HttpUpstream, MockUpstream, RoutedUpstream, TransportFailure
from llmage.providers.wire import (
    FormPart,
    UpstreamReply,
    UpstreamRequest,
    dig,
    encode_multipart,
    join_url,
    json_request,
)
from support.servers import free_socket

# -- values -------------------------------------------------------------------------------------


def test_join_url_and_query() -> None:
    assert join_url("https://h/v1/", "/videos") == "https://h/v1/videos"
    assert join_url("https://h/v1", "videos", {"limit": 1, "after": None}) == (
        "https://h/v1/videos?limit=1"
    )
    # Jimeng's style: everything in the query of "/".
    assert join_url("https://h", "", {"Action": "Get", "b": "x y"}) == "https://h/?Action=Get&b=x+y"


def test_requests_know_whether_they_may_be_resent() -> None:
    assert not json_request("POST", "https://h/x", {}).idempotent
    assert UpstreamRequest("GET", "https://h/x").idempotent
    req = json_request("POST", "https://h/x", {"a": 1}, {"X-T": "1"})
    assert req.header("content-type") == "application/json" and req.body == b'{"a":1}'
    assert req.with_headers({"Authorization": "Bearer k"}).header("authorization") == "Bearer k"


def test_multipart_round_trips_fields_and_files() -> None:
    ctype, body = encode_multipart(
        [
            FormPart("prompt", '一只猫 "quoted"'),
            FormPart("image[]", b"\x89PNGdata", filename="a.png", content_type="image/png"),
        ]
    )
    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    parts = list(msg.iter_parts())
    assert parts[0].get_param("name", header="content-disposition") == "prompt"
    assert parts[0].get_payload(decode=True).decode() == '一只猫 "quoted"'
    assert parts[1].get_filename() == "a.png"
    assert parts[1].get_payload(decode=True) == b"\x89PNGdata"


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past
        ({"retry-after": "soon"}, None),
        ({"retry-after": "999999"}, 3600.0),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert UpstreamReply(429, headers, b"").retry_after() == seconds


def test_reply_json_and_dig() -> None:
    reply = UpstreamReply(200, {}, b'{"a": {"b": [1, {"c": 2}]}}')
    assert dig(reply.json(), "a", "b", 1, "c") == 2
    assert dig(reply.json(), "a", "x", 0) is None and dig(reply.json(), "a", "b", 5) is None
    with pytest.raises(UpstreamError) as caught:
        UpstreamReply(200, {}, b"<html>").json()
    assert caught.value.kind is UpstreamKind.UPSTREAM_BUG
    assert UpstreamReply(502, {}, b"<html>").json_or_none() is None


# -- credentials --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "creds",
    [ApiKey("sk-1234567890"), KeyPair("AK123", "SK456"), KeyPool(("k1", "k2", "k3"))],
)
def test_credentials_round_trip_and_never_show(creds: ApiKey | KeyPair | KeyPool) -> None:
    assert load_secret(creds.type, dump_secret(creds)) == creds
    for secret in secret_values(creds):
        assert secret not in repr(creds) or secret == getattr(creds, "access_key", None)
        assert secret not in describe(creds)


def test_rows_from_before_typed_credentials_are_keys() -> None:
    assert load_secret(None, "sk-legacy") == ApiKey("sk-legacy")
    with pytest.raises(ValueError, match="pair"):
        load_secret("pair", '{"access_key": "a"}')
    with pytest.raises(ValueError, match="pool"):
        load_secret("pool", "not json")


def test_from_fields_takes_exactly_one_credential() -> None:
    assert from_fields(api_key="k") == ApiKey("k")
    assert from_fields(access_key="a", secret_key="s") == KeyPair("a", "s")
    assert from_fields(api_keys="k1, k2,") == KeyPool(("k1", "k2"))
    assert from_fields() is None
    for bad in ({"api_key": "k", "api_keys": "x"}, {"access_key": "a"}, {"secret_key": "s"}):
        with pytest.raises(ValueError):
            from_fields(**bad)


def test_pick_resolves_a_pool_to_one_key() -> None:
    pool = KeyPool(("k0", "k1"))
    assert pick(pool, 1) == ApiKey("k1") and pick(pool, 2) == ApiKey("k0")
    assert pick(KeyPair("a", "s"), 5) == KeyPair("a", "s") and pick(None, 0) is None


# -- kinds and usage ----------------------------------------------------------------------------


def test_error_kinds_say_whose_fault_it_is() -> None:
    channel = {k for k in UpstreamKind if k.channel_problem}
    user = {k for k in UpstreamKind if k.user_fault}
    assert channel == {UpstreamKind.AUTH, UpstreamKind.MODEL_NOT_ENABLED, UpstreamKind.QUOTA}
    assert UpstreamKind.INPUT_MODERATION in user and not channel & user
    assert UpstreamError(UpstreamKind.INPUT_MODERATION, "x").status == 400
    assert UpstreamError(UpstreamKind.RATE_LIMITED, "x").retryable
    assert not UpstreamError(UpstreamKind.TIMEOUT, "x").retryable
    assert UpstreamKind.UPSTREAM_BALANCE is UpstreamKind.QUOTA


def test_usage_prices_what_was_reported() -> None:
    usage = Usage(seconds=5.2, resolution="720p", off_peak=True, tokens=1000)
    assert usage.pricing_params() == {
        "duration": 5.2, "resolution": "720p", "off_peak": True, "tokens": 1000,
    }  # fmt: skip
    assert Usage(images=2).record() == {"images": 2}
    assert Usage(seconds=4).record() == {"duration": 4}


# -- the Upstream seam over real HTTP -----------------------------------------------------------


async def _server(handler: web.Handler) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = free_socket()
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_http_upstream_round_trip_and_limits() -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/big":
            return web.Response(body=b"x" * 5000)
        return web.json_response(
            {"echo": body.decode(), "auth": request.headers.get("Authorization")},
            status=201,
            headers={"Retry-After": "2"},
        )

    runner, url = await _server(handler)
    up = HttpUpstream(Transport(pool_size=4, connect_timeout=2, read_timeout=5))
    try:
        reply = await up.send(
            json_request("POST", url + "/x", {"a": 1}, {"Authorization": "Bearer k"}),
            deadline=5,
            max_bytes=1000,
        )
        assert reply.status == 201 and reply.json() == {"echo": '{"a":1}', "auth": "Bearer k"}
        assert reply.retry_after() == 2.0
        with pytest.raises(UpstreamError) as caught:
            await up.send(UpstreamRequest("GET", url + "/big"), deadline=5, max_bytes=1000)
        assert caught.value.kind is UpstreamKind.UPSTREAM_BUG
    finally:
        await runner.cleanup()


async def test_a_refused_connection_was_never_sent() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    up = HttpUpstream(Transport(pool_size=4, connect_timeout=2, read_timeout=5))
    with pytest.raises(TransportFailure) as caught:
        await up.send(
            json_request("POST", f"http://127.0.0.1:{port}/videos", {}), deadline=5, max_bytes=100
        )
    assert caught.value.maybe_sent is False


async def test_a_silent_upstream_is_a_timeout_that_may_have_arrived() -> None:
    arrived, release = asyncio.Event(), asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        arrived.set()
        await release.wait()  # answers only after the test gave up on it
        return web.Response(text="too late")

    runner, url = await _server(handler)
    up = HttpUpstream(Transport(pool_size=4, connect_timeout=2, read_timeout=30))
    try:
        with pytest.raises(TransportFailure) as caught:
            await up.send(json_request("POST", url + "/videos", {}), deadline=0.3, max_bytes=100)
        assert caught.value.maybe_sent is True and caught.value.kind is UpstreamKind.TIMEOUT
        assert arrived.is_set()
    finally:
        release.set()
        await runner.cleanup()


async def test_routed_upstream_sends_sim_in_process() -> None:
    local = MockUpstream(lambda r: UpstreamReply(200, {}, b"local"))
    remote = MockUpstream(lambda r: UpstreamReply(200, {}, b"remote"))
    routed = RoutedUpstream(remote, {"sim": local})
    got = await routed.send(UpstreamRequest("GET", "sim://media/x"), deadline=1, max_bytes=10)
    assert got.body == b"local"
    got = await routed.send(UpstreamRequest("GET", "https://h/x"), deadline=1, max_bytes=10)
    assert got.body == b"remote"
