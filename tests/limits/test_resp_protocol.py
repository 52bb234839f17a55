"""The Redis client's reply parser and its send-now path (used by limits settlement), against
bytes cut at every position and against the real Redis at 127.0.0.1:6379."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from test_redis_limits import redis  # noqa: F401 - the fixture

from llmage.net.resp import (
    Redis,
    RedisReplyError,
    RedisUnavailable,
    Script,
    _Incomplete,
    _RespProtocol,
    parse_reply,
)

REPLIES = (
    (b"+OK\r\n", b"OK"),
    (b"-ERR wrong\r\n", "ERR wrong"),
    (b":42\r\n", 42),
    (b"$5\r\nhe\r\no\r\n", b"he\r\no"),
    (b"$-1\r\n", None),
    (b"*3\r\n:1\r\n$2\r\nab\r\n*1\r\n+x\r\n", [1, b"ab", [b"x"]]),
    (b"*0\r\n", []),
)


def _plain(value: object) -> object:
    return str(value) if isinstance(value, RedisReplyError) else value


@pytest.mark.parametrize(("wire", "value"), REPLIES)
def test_parse_whole_and_incomplete_at_every_cut(wire: bytes, value: object) -> None:
    got, end = parse_reply(wire + b":7\r\n", 0)
    assert _plain(got) == value and end == len(wire)
    for cut in range(len(wire)):
        with pytest.raises(_Incomplete):
            parse_reply(wire[:cut], 0)


def test_protocol_resolves_replies_in_order_across_any_split() -> None:
    wire = b"".join(w for w, _ in REPLIES)
    for step in (1, 2, 3, 7, len(wire)):

        async def run(step: int = step) -> list[object]:
            loop = asyncio.get_running_loop()
            proto = _RespProtocol()
            futs = [loop.create_future() for _ in REPLIES]
            proto.pending.extend(futs)
            for i in range(0, len(wire), step):
                proto.data_received(wire[i : i + step])
            return [_plain(f.result()) for f in futs]

        assert asyncio.run(run()) == [v for _, v in REPLIES]


def test_garbage_fails_every_pending_reply() -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        proto = _RespProtocol()
        lost: list[Exception] = []
        proto.lost = lost.append
        futs = [loop.create_future(), loop.create_future()]
        proto.pending.extend(futs)
        proto.data_received(b"?what\r\n")
        assert all(isinstance(f.exception(), RedisUnavailable) for f in futs)
        assert len(lost) == 1 and not proto.pending

    asyncio.run(run())


async def test_evalsha_soon_loads_an_unknown_script_once(redis: Redis) -> None:  # noqa: F811
    key = f"llmage-test:{secrets.token_hex(6)}"
    # A script the server has never seen: EVALSHA answers NOSCRIPT, the client sends it whole.
    script = Script(f"-- {secrets.token_hex(8)}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
    await redis.execute("PING")  # connected: evalsha_soon sends on the live connection
    fut = redis.evalsha_soon(script, [key], [5])
    assert fut is not None
    assert await asyncio.wait_for(fut, 5) == 5
    fut = redis.evalsha_soon(script, [key], [2])
    assert fut is not None
    assert await asyncio.wait_for(fut, 5) == 7
    await redis.execute("DEL", key)


async def test_evalsha_soon_reports_script_errors(redis: Redis) -> None:  # noqa: F811
    script = Script(f"-- {secrets.token_hex(8)}\nreturn redis.error_reply('NOPE bad')")
    await redis.execute("PING")
    fut = redis.evalsha_soon(script, [], [])
    assert fut is not None
    with pytest.raises(RedisReplyError, match="NOPE"):
        await asyncio.wait_for(fut, 5)
    assert redis.connected  # an error reply is an answer, not a broken connection


def test_evalsha_soon_without_a_connection_is_none() -> None:
    r = Redis("redis://127.0.0.1:1/0")
    assert r.evalsha_soon(Script("return 1"), [], []) is None
