"""Every call has an end, and every failure is traceable.

- An upstream that trickles a byte at a time (it never goes idle) is cut at the total deadline:
  504 before the first event, the stream's error event after it; the hold is released.
  (A client that leaves: test_client_leaves.py.)
- Failed calls carry `x-llmage-usage-id`; a bug is a 500 in the dialect's shape that leaves the
  client's keep-alive connection usable and does not escape to the server as an ASGI error.

No assertion measures time: the idle timeout is 5 minutes, so only the deadline (1 s) can end
the trickling calls, and the HTTP client's own 30 s timeout only turns a hang into a failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from upstreamenv import ChannelDef, UpstreamEnv, upstream_env

from support.backends import BACKENDS
from support.scripted import Request, ScriptedUpstream, head
from support.servers import LoopThread

DEADLINE = 1.0
HELLO = [{"role": "user", "content": "hello"}]
CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]}  # fmt: skip
FIRST_EVENT = b"data: " + orjson.dumps(CHUNK) + b"\n\n"


def streaming(req: Request) -> bool:
    return bool(json.loads(req.body).get("stream"))


async def trickle(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    """A byte every 50 ms forever: a space in a JSON body, an SSE comment in a stream."""
    if streaming(req):
        w.write(head(200, "text/event-stream"))
        await up.trickle(r, w, b":\n", 0.05)
    else:
        w.write(head(200))
        await up.trickle(r, w, b" ", 0.05)
    return False


async def first_event_then_trickle(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(head(200, "text/event-stream"))
    w.write(b"%x\r\n%s\r\n" % (len(FIRST_EVENT), FIRST_EVENT))
    await up.trickle(r, w, b":\n", 0.05)
    return False


SCRIPTS = {
    "trickle": trickle,
    "oneevent": first_event_then_trickle,
}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, ScriptedUpstream]]:
    loop = LoopThread("call-ends-upstreams")
    ups = {name: ScriptedUpstream(script) for name, script in SCRIPTS.items()}
    for up in ups.values():
        loop.call(up.start())
    try:
        yield ups
    finally:
        for up in ups.values():
            loop.call(up.stop())
        loop.stop()


async def boom() -> None:
    raise RuntimeError("a bug on purpose")


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstreams: dict[str, ScriptedUpstream],
) -> Iterator[UpstreamEnv]:
    tmp = tmp_path_factory.mktemp(f"call-ends-{request.param}")
    channels = [ChannelDef(name, up.url, "sk-test-key") for name, up in upstreams.items()]
    channels[0].models = ("deepseek-chat", "deepseek-reasoner")  # trickle
    with upstream_env(
        request.param,
        tmp,
        channels,
        {"/boom": boom},
        upstream_read_timeout=300.0,  # idle: a trickle never reaches it
        upstream_total_timeout=DEADLINE,
        upstream_stream_total_timeout=DEADLINE,
        upstream_stream_gap_timeout=300.0,
    ) as env:
        yield env


@pytest.fixture
def ups(upstreams: dict[str, ScriptedUpstream]) -> dict[str, ScriptedUpstream]:
    for up in upstreams.values():
        up.reset()
    return upstreams


def body(stream: bool) -> dict[str, Any]:
    return {"model": "deepseek-chat", "messages": HELLO, "stream": stream}


# -- the total deadline -------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_trickling_upstream_is_cut_at_the_deadline(
    env: UpstreamEnv, ups: dict[str, ScriptedUpstream], stream: bool
) -> None:
    acc = env.account("100")
    r = env.chat(acc, "/trickle/v1/chat/completions", body(stream))
    assert r.status_code == 504, r.text
    assert r.json()["error"]["code"] == "timeout"
    assert ups["trickle"].client_left.wait(5)  # the upstream call was closed, not abandoned
    assert env.wait_released(acc.user_id) == (100_000_000, 0)
    record = env.usage(r.headers["x-llmage-usage-id"])  # a failed call names its record
    assert record is not None and record.status == "error" and record.amount == 0


def test_stream_cut_after_its_first_event_ends_with_an_error_event(
    env: UpstreamEnv, ups: dict[str, ScriptedUpstream]
) -> None:
    acc = env.account("100")
    r = env.chat(acc, "/oneevent/v1/chat/completions", body(True))
    assert r.status_code == 200
    events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert events[0]["choices"][0]["delta"]["content"] == "hi"
    assert events[-1]["error"]["code"] == "timeout", events
    assert "[DONE]" not in r.text
    assert ups["oneevent"].client_left.wait(5)
    # An upstream failure releases the whole hold, even mid-stream.
    assert env.wait_released(acc.user_id) == (100_000_000, 0)


@pytest.mark.parametrize("stream", [False, True], ids=["non-stream", "stream"])
def test_native_call_to_a_trickling_upstream_is_cut_too(
    env: UpstreamEnv, ups: dict[str, ScriptedUpstream], stream: bool
) -> None:
    acc = env.account("100")
    # Only the trickling channel serves deepseek-reasoner.
    r = env.chat(
        acc,
        "/llmage/v1/chat/completions",
        {"model": "deepseek-reasoner", "prompt": "hi", "stream": stream},
    )
    assert r.status_code == 504, r.text
    assert set(r.json()) == {"error"}  # the native shape
    assert r.headers["x-llmage-usage-id"]
    assert ups["trickle"].client_left.wait(5)
    assert env.wait_released(acc.user_id) == (100_000_000, 0)


# -- errors that stay traceable -----------------------------------------------------------------


def raw_exchange(env: UpstreamEnv, requests: list[bytes]) -> list[bytes]:
    """Several requests, one after the other, on ONE connection; each answer read whole."""
    host, port = env.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    answers = []
    try:
        for req in requests:
            sock.sendall(req)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                assert chunk, f"connection closed after {len(answers)} answers"
                data += chunk
            head_, _, rest = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head_.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(rest) < length:
                chunk = sock.recv(65536)
                assert chunk, "connection closed mid-answer"
                rest += chunk
            answers.append(head_ + b"\r\n\r\n" + rest)
    finally:
        sock.close()
    return answers


def test_a_bug_is_a_500_that_keeps_the_connection(
    env: UpstreamEnv, caplog: pytest.LogCaptureFixture
) -> None:
    """`/boom` stands in for any bug (the route other suites leave out of their "never a 500"
    count). The 500 is answered in the error shape, logged once by us, and the same connection
    then serves the next requests."""
    caplog.set_level(logging.INFO)
    host = env.url.removeprefix("http://")
    boom = f"GET /boom HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    health = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    first, second, third = raw_exchange(env, [boom, boom, health])
    assert first.startswith(b"HTTP/1.1 500"), first
    error = json.loads(first.partition(b"\r\n\r\n")[2])["error"]
    assert error["type"] == "server_error" and "bug" not in error["message"]
    assert second.startswith(b"HTTP/1.1 500"), second
    assert third.startswith(b"HTTP/1.1 200"), third
    assert "Exception in ASGI application" not in caplog.text
    logged = [r for r in caplog.records if r.exc_info and "on purpose" in str(r.exc_info[1])]
    assert len(logged) == 2  # once per bug, with its trace
