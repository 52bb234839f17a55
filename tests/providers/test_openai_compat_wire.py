"""The OpenAI-compatible chat relay on the wire, against raw loopback servers: a completion,
an error status, invalid JSON, a reply that is no completion, a body cut short; a stream read
to [DONE] (its connection kept), a stream's error status, a bad chunk, an error event, a
stream cut short, and a stream left early (its connection closed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from llmage.domain.credentials import ApiKey
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.contract import Channel
from llmage.providers.openai_compat import OpenAICompatProvider
from llmage.providers.transport import Transport
from support.rawhttp import RawServer, replies, serve, sized

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def channel(up: RawServer) -> Channel:
    return Channel(
        id=1, name="c", provider="openai_compat", platform="x",
        base_url=f"http://127.0.0.1:{up.port}/v1/", credentials=ApiKey("sk-wire-1"),
        models=frozenset({"*"}), model_map={}, options={},
    )  # fmt: skip


@pytest.fixture
async def servers() -> AsyncIterator[list[RawServer]]:
    opened: list[RawServer] = []
    yield opened
    for server in opened:
        await server.stop()


@pytest.fixture
async def relay() -> AsyncIterator[OpenAICompatProvider]:
    transport = Transport(pool_size=4, connect_timeout=10, read_timeout=60)
    yield OpenAICompatProvider(transport)
    await transport.close()


def chunked(*events: bytes, end: bool = True) -> bytes:
    out = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    for e in events:
        out += b"%x\r\n%s\r\n" % (len(e), e)
    return out + (b"0\r\n\r\n" if end else b"")


COMPLETION = orjson.dumps({"choices": [{"message": {"content": "yo"}}]})


async def test_a_completion(servers: list[RawServer], relay: OpenAICompatProvider) -> None:
    up = await serve(servers, replies(sized(COMPLETION)))
    result = await relay.chat(channel(up), dict(BODY))
    assert result["choices"][0]["message"]["content"] == "yo"
    assert b"Authorization: Bearer sk-wire-1" in up.heads[0]


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (sized(b'{"error": {"message": "no"}}', "401 Unauthorized"), UpstreamKind.AUTH, None),
        (sized(b"{not json"), UpstreamKind.UPSTREAM_BUG, "invalid JSON"),
        (sized(b'{"id": 1}'), UpstreamKind.UPSTREAM_BUG, "not a completion"),
        (sized(b"[1]"), UpstreamKind.UPSTREAM_BUG, "not a completion"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", UpstreamKind.TIMEOUT, "mid-response"),
    ],
)
async def test_chat_failures(
    servers: list[RawServer],
    relay: OpenAICompatProvider,
    answer: bytes,
    kind: UpstreamKind,
    message: str | None,
) -> None:
    up = await serve(servers, replies(answer, keep=False))
    with pytest.raises(UpstreamError) as caught:
        await relay.chat(channel(up), dict(BODY))
    assert caught.value.kind is kind
    if message:
        assert message in caught.value.message


async def collect(relay: OpenAICompatProvider, up: RawServer) -> list[dict[str, Any]]:
    return [c async for c in relay.chat_stream(channel(up), {**BODY, "stream": True})]


async def test_a_stream_to_done_keeps_its_connection(
    servers: list[RawServer], relay: OpenAICompatProvider
) -> None:
    events = (b'data: {"choices": [{"delta": {"content": "a"}}]}\n\n', b"data: [DONE]\n\n")
    up = await serve(servers, replies(chunked(*events)))
    assert [c["choices"][0]["delta"]["content"] for c in await collect(relay, up)] == ["a"]
    await collect(relay, up)
    assert up.connections == 1


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (sized(b'{"error": {"message": "slow down"}}', "429 Too Many Requests"),
         UpstreamKind.RETRYABLE, "429"),
        (chunked(b"data: {oops\n\n"), UpstreamKind.UPSTREAM_BUG, "bad chunk"),
        (chunked(b'data: {"error": {"message": "overloaded"}}\n\n'), UpstreamKind.UPSTREAM_BUG,
         "overloaded"),
        (chunked(b'data: {"error": "plain words"}\n\n'), UpstreamKind.UPSTREAM_BUG,
         "plain words"),
        (chunked(b'data: {"choices": []}\n\n', end=False), UpstreamKind.TIMEOUT, "mid-response"),
    ],
)  # fmt: skip
async def test_stream_failures(
    servers: list[RawServer],
    relay: OpenAICompatProvider,
    answer: bytes,
    kind: UpstreamKind,
    message: str | None,
) -> None:
    up = await serve(servers, replies(answer, keep=False))
    with pytest.raises(UpstreamError) as caught:
        await collect(relay, up)
    assert caught.value.kind is kind
    if message:
        assert message in caught.value.message


async def test_a_stream_left_early_closes_its_connection(
    servers: list[RawServer], relay: OpenAICompatProvider
) -> None:
    left = asyncio.Event()

    async def endless(head: bytes, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> bool:
        w.write(chunked(b'data: {"choices": []}\n\n', end=False))
        await w.drain()
        await r.read(1)  # EOF: the client closed the connection
        left.set()
        return False

    up = await serve(servers, endless)
    stream = relay.chat_stream(channel(up), {**BODY, "stream": True})
    assert await anext(stream) == {"choices": []}
    await stream.aclose()
    await asyncio.wait_for(left.wait(), 30)


async def test_a_stream_that_ends_without_done_closes_its_connection(
    servers: list[RawServer], relay: OpenAICompatProvider
) -> None:
    up = await serve(servers, replies(chunked(b'data: {"choices": []}\n\n')))
    assert await collect(relay, up) == [{"choices": []}]
    await collect(relay, up)
    assert up.connections == 2  # without [DONE] the connection is not trusted again
