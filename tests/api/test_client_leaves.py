"""A client that leaves cancels its upstream call: the upstream sees its connection closed
within 1 s (the fake sets an event when it reads EOF), for a non-stream call, a stream still
waiting for its first event and a stream in the middle, and the hold is released.

The upstream deadlines here are the defaults (minutes): only the client leaving can end these
calls, so an upstream that sees the close in time saw it because of the client.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from upstreamenv import ChannelDef, UpstreamEnv, upstream_env

from support.backends import BACKENDS
from support.scripted import Request, ScriptedUpstream, head
from support.servers import LoopThread

HELLO = [{"role": "user", "content": "hello"}]
CHUNK = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
         "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]}  # fmt: skip
FIRST_EVENT = b"data: " + orjson.dumps(CHUNK) + b"\n\n"


async def silent(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    await up.until_client_leaves(r)
    return False


async def first_event_then_silent(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    w.write(head(200, "text/event-stream"))
    w.write(b"%x\r\n%s\r\n" % (len(FIRST_EVENT), FIRST_EVENT))
    await w.drain()
    await up.until_client_leaves(r)
    return False


SCRIPTS = {"silent": silent, "silentafter": first_event_then_silent}


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, ScriptedUpstream]]:
    loop = LoopThread("client-leaves-upstreams")
    ups = {name: ScriptedUpstream(script) for name, script in SCRIPTS.items()}
    for up in ups.values():
        loop.call(up.start())
    try:
        yield ups
    finally:
        for up in ups.values():
            loop.call(up.stop())
        loop.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstreams: dict[str, ScriptedUpstream],
) -> Iterator[UpstreamEnv]:
    tmp = tmp_path_factory.mktemp(f"client-leaves-{request.param}")
    channels = [ChannelDef(name, up.url, "sk-test-key") for name, up in upstreams.items()]
    channels[0].models = ("deepseek-chat", "deepseek-reasoner")  # silent: native route too
    with upstream_env(request.param, tmp, channels) as env:
        yield env


@pytest.fixture
def ups(upstreams: dict[str, ScriptedUpstream]) -> dict[str, ScriptedUpstream]:
    for up in upstreams.values():
        up.reset()
    return upstreams


def body(stream: bool, path: str) -> dict[str, Any]:
    if path.startswith("/llmage/"):
        return {"model": "deepseek-reasoner", "prompt": "hello", "stream": stream}
    return {"model": "deepseek-chat", "messages": HELLO, "stream": stream}


def leave_early(env: UpstreamEnv, key: str, path: str, stream: bool, up: ScriptedUpstream) -> None:
    """Send a chat request on a raw socket, wait until the upstream has it (and, for a stream
    with a first event, until that event reached us), then hang up."""
    payload = json.dumps(body(stream, path)).encode()
    host, port = env.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    try:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        assert up.got_request.wait(15)
        if path.startswith("/silentafter"):
            received = b""
            while b"data:" not in received:
                chunk = sock.recv(65536)
                assert chunk, "the stream ended before its first event"
                received += chunk
    finally:
        sock.close()


@pytest.mark.parametrize(
    ("name", "path", "stream"),
    [
        ("silent", "/silent/v1/chat/completions", False),
        ("silent", "/silent/v1/chat/completions", True),
        ("silentafter", "/silentafter/v1/chat/completions", True),
        ("silent", "/llmage/v1/chat/completions", False),
        ("silent", "/llmage/v1/chat/completions", True),
    ],
    ids=["non-stream", "stream-before-first-event", "stream-mid", "native", "native-stream"],
)
def test_client_leaving_closes_the_upstream_call(
    env: UpstreamEnv, ups: dict[str, ScriptedUpstream], name: str, path: str, stream: bool
) -> None:
    acc = env.account("100")
    up = ups[name]
    leave_early(env, acc.key, path, stream, up)
    assert up.client_left.wait(1.0), "the upstream still holds the call of a client that left"
    balance, held = env.wait_released(acc.user_id)
    assert held == 0
    # Nothing was generated before the client left, except the stream's one chunk ("hi"),
    # paid from an estimate of what was relayed.
    assert balance == 100_000_000 or name == "silentafter"
    assert balance <= 100_000_000
