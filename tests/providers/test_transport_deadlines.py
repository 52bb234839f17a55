"""The shared upstream transport against scripted loopback servers: every call has an end (total
deadline, stream gap, idle timeout), a cancelled call closes its connection at once, a POST is
never sent twice, and failures are fixed sentences without an address.

No assertion here measures time: each scenario would hang (or pass wrongly) without the
mechanism under test, and an outer `wait_for` turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.http1 import Http1Pool
from llmage.providers.transport import (
    HttpDeadline,
    HttpError,
    HttpStalled,
    HttpTimeout,
    Transport,
)
from support.scripted import Request, ScriptedUpstream, head, whole
from support.servers import free_socket

HANG_GUARD = 30.0  # only reached if a deadline failed to fire


async def started(up: ScriptedUpstream) -> ScriptedUpstream:
    await up.start()
    return up


async def event(flag: object, timeout: float = 5.0) -> bool:
    """Wait for a threading.Event without blocking the loop the servers run in."""
    return await asyncio.to_thread(flag.wait, timeout)  # type: ignore[attr-defined]


def transport(**kw: float) -> Transport:
    options = {"connect_timeout": 5.0, "read_timeout": 60.0, "keepalive_expiry": 60.0, **kw}
    return Transport(pool_size=8, **options)  # type: ignore[arg-type]


Closing = list[ScriptedUpstream | Transport]


@pytest.fixture
async def closing() -> AsyncIterator[Closing]:
    """Servers and transports a test opened, closed after it."""
    things: list[ScriptedUpstream | Transport] = []
    yield things
    for thing in things:
        if isinstance(thing, ScriptedUpstream):
            await thing.stop()
        else:
            await thing.close()


# -- scripts ------------------------------------------------------------------------------------


async def trickle_json(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(head(200))
    await up.trickle(r, w, b" ", 0.02)
    return False


async def trickle_comments(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(head(200, "text/event-stream"))
    await up.trickle(r, w, b":\n", 0.02)
    return False


async def endless_events(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(head(200, "text/event-stream"))
    await up.trickle(r, w, b'data: {"choices": []}\n\n', 0.02)
    return False


async def silent(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    await up.until_client_leaves(r)
    return False


async def head_then_silent(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(head(200))
    await w.drain()
    await up.until_client_leaves(r)
    return False


async def second_request_dropped(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    """Answers the first request of each connection; reads the second and closes, unanswered:
    a kept-alive connection the server gave up on just as the client reused it."""
    if sum(1 for x in up.requests if x.connection == req.connection) > 1:
        return False
    w.write(whole(200, b'{"ok": true}'))
    await w.drain()
    return True


async def answer(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(whole(200, b"x" * 100))
    await w.drain()
    return True


# -- deadlines ----------------------------------------------------------------------------------


async def test_trickled_body_ends_at_the_total_deadline(closing: Closing) -> None:
    up = await started(ScriptedUpstream(trickle_json))
    t = transport(total_timeout=0.5)
    closing += [up, t]
    resp = await t.request("POST", up.url, headers={}, data=b"{}")
    with pytest.raises(HttpDeadline) as info:
        await asyncio.wait_for(resp.read(), HANG_GUARD)
    assert not isinstance(info.value, HttpStalled)
    assert await event(up.client_left)  # the connection was closed, not left to trickle


async def test_silent_stream_ends_at_the_gap(closing: Closing) -> None:
    """Comments and blank lines are bytes, not events: they do not keep a stream alive."""
    up = await started(ScriptedUpstream(trickle_comments))
    t = transport(stream_gap_timeout=0.5, stream_total_timeout=600)
    closing += [up, t]

    async def consume() -> None:
        resp = await t.request("POST", up.url, headers={}, stream=True)
        try:
            async for _ in resp.events():
                pass
        finally:
            resp.close()

    with pytest.raises(HttpStalled):
        await asyncio.wait_for(consume(), HANG_GUARD)
    assert await event(up.client_left)


async def test_events_rearm_the_gap_but_the_total_deadline_still_ends_the_stream(
    closing: Closing,
) -> None:
    up = await started(ScriptedUpstream(endless_events))
    # An event every 20 ms against a 1 s gap: only the 2 s total can end this stream.
    t = transport(stream_gap_timeout=1.0, stream_total_timeout=2.0)
    closing += [up, t]
    seen = 0

    async def consume() -> None:
        nonlocal seen
        resp = await t.request("POST", up.url, headers={}, stream=True)
        try:
            async for payload in resp.events():
                assert payload == b'{"choices": []}'
                seen += 1
        finally:
            resp.close()

    with pytest.raises(HttpDeadline) as info:
        await asyncio.wait_for(consume(), HANG_GUARD)
    assert not isinstance(info.value, HttpStalled)
    assert seen > 1


async def test_caller_deadline_wins_when_earlier(closing: Closing) -> None:
    up = await started(ScriptedUpstream(trickle_json))
    t = transport(total_timeout=600)
    closing += [up, t]
    resp = await t.request("POST", up.url, headers={}, deadline=time.monotonic() + 0.5)
    with pytest.raises(HttpDeadline):
        await asyncio.wait_for(resp.read(), HANG_GUARD)


async def test_idle_timeout_still_applies(closing: Closing) -> None:
    up = await started(ScriptedUpstream(head_then_silent))
    t = transport(read_timeout=0.3, total_timeout=600)
    closing += [up, t]
    resp = await t.request("POST", up.url, headers={})
    with pytest.raises(HttpTimeout) as info:
        await asyncio.wait_for(resp.read(), HANG_GUARD)
    assert not isinstance(info.value, HttpDeadline)


async def test_deadline_before_the_response_head_is_an_upstream_timeout(
    closing: Closing,
) -> None:
    up = await started(ScriptedUpstream(silent))
    t = transport(total_timeout=0.3)
    closing += [up, t]
    with pytest.raises(UpstreamError) as info:
        await asyncio.wait_for(t.request("POST", up.url, headers={}), HANG_GUARD)
    assert info.value.kind is UpstreamKind.TIMEOUT and info.value.status == 504
    assert await event(up.client_left)


# -- cancellation -------------------------------------------------------------------------------


async def test_cancel_while_waiting_for_the_head_closes_the_connection(
    closing: Closing,
) -> None:
    up = await started(ScriptedUpstream(silent))
    t = transport()
    closing += [up, t]
    call = asyncio.create_task(t.request("POST", up.url, headers={}))
    assert await event(up.got_request)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await event(up.client_left)


async def test_cancel_while_reading_the_body_closes_the_connection(closing: Closing) -> None:
    up = await started(ScriptedUpstream(head_then_silent))
    t = transport()
    closing += [up, t]
    resp = await t.request("POST", up.url, headers={})
    reading = asyncio.create_task(resp.read())
    await asyncio.sleep(0)  # let it start waiting
    reading.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reading
    assert await event(up.client_left)


# -- resending ----------------------------------------------------------------------------------


async def test_post_is_never_resent_but_an_idempotent_request_is(closing: Closing) -> None:
    up = await started(ScriptedUpstream(second_request_dropped))
    pool = Http1Pool(connect_timeout=5, read_timeout=60, keepalive_expiry=60)
    closing.append(up)

    first = await pool.request("POST", up.url, {})
    assert await first.read() == b'{"ok": true}'
    with pytest.raises(HttpError):  # the server read it: it must not get it twice
        await pool.request("POST", up.url, {}, b"{}")
    assert [(r.method, r.connection) for r in up.requests] == [("POST", 0), ("POST", 0)]

    again = await pool.request("POST", up.url, {})
    await again.read()
    got = await pool.request("GET", up.url, {})
    assert await got.read() == b'{"ok": true}'
    assert [(r.method, r.connection) for r in up.requests[2:]] == [
        ("POST", 1),
        ("GET", 1),  # dropped unanswered...
        ("GET", 2),  # ...so asked once more, on a fresh connection
    ]
    await pool.close()


@pytest.mark.parametrize(("expiry", "connections"), [(60.0, 1), (0.0, 3)])
async def test_connections_idle_past_the_expiry_are_not_reused(
    closing: Closing, expiry: float, connections: int
) -> None:
    up = await started(ScriptedUpstream(answer))
    pool = Http1Pool(connect_timeout=5, read_timeout=60, keepalive_expiry=expiry)
    closing.append(up)
    for _ in range(3):
        resp = await pool.request("POST", up.url, {})
        await resp.read()
    assert up.connections == connections
    await pool.close()


async def test_oversized_body_is_refused_and_the_connection_closed(
    closing: Closing,
) -> None:
    up = await started(ScriptedUpstream(answer))
    pool = Http1Pool(connect_timeout=5, read_timeout=60)
    closing.append(up)
    resp = await pool.request("POST", up.url, {})
    with pytest.raises(HttpError, match="too large"):
        await resp.read(limit=10)
    resp = await pool.request("POST", up.url, {})  # a new connection: the first was dropped
    assert len(await resp.read()) == 100
    assert up.connections == 2
    await pool.close()


# -- messages -----------------------------------------------------------------------------------


async def test_transport_failures_name_no_address() -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    t = transport()
    try:
        for url in (f"http://127.0.0.1:{port}/v1/chat", f"ftp://127.0.0.1:{port}/x"):
            with pytest.raises(UpstreamError) as info:
                await t.request("POST", url, headers={})
            assert info.value.kind is UpstreamKind.RETRYABLE
            assert info.value.message == "Upstream unreachable"
            assert str(port) not in str(info.value) and "127.0.0.1" not in str(info.value)
    finally:
        await t.close()
