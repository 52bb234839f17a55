"""Secret sentinel: a channel whose key is `sk-SENTINEL-<random>` in front of an upstream that
echoes that key (raw, URL-encoded, without its prefix, base64) and its own address in every error
it can give: JSON error bodies of each status, response headers, a non-JSON reply, and stream
error events before and after the first chunk. Through both chat dialects, the sentinel and the
upstream's address must appear nowhere: not in client responses (bodies, headers, stream events),
not in logs, not in any database row, not in /metrics.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from upstreamenv import ChannelDef, UpstreamEnv, upstream_env

from support.backends import BACKENDS
from support.scripted import Request, ScriptedUpstream, head, whole
from support.servers import LoopThread

KEY = "sk-SENTINEL-" + secrets.token_hex(10)
CORE = KEY.removeprefix("sk-SENTINEL-")
HELLO = [{"role": "user", "content": "hello"}]


@dataclass
class Echo:
    """What the echoing upstream answers next, and the text it echoes."""

    mode: str = "bad_request"
    url: str = ""
    seen_keys: list[str] = field(default_factory=list)

    def text(self, req: Request) -> str:
        auth = req.header("authorization") or ""
        key = auth.removeprefix("Bearer ")
        self.seen_keys.append(key)
        return (
            f"Incorrect API key {key} ({quote(auth)}, {key.removeprefix('sk-')}, "
            f"{base64.b64encode(key.encode()).decode()}, "
            f"{base64.b64encode(auth.encode()).decode()}) sent to {self.url}/chat/completions "
            f"on {self.url.split('//')[1].split('/')[0]}"
        )


ECHO = Echo()


async def echo_script(
    up: ScriptedUpstream, req: Request, r: asyncio.StreamReader, w: asyncio.StreamWriter
) -> bool:
    message = ECHO.text(req)
    leak = {"X_Echo_Key": ECHO.seen_keys[-1], "Location": ECHO.url}
    error = orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    statuses = {"bad_request": 400, "auth": 401, "not_found": 404, "server": 500, "odd": 418}
    if ECHO.mode in statuses:
        w.write(whole(statuses[ECHO.mode], error, **leak))
    elif ECHO.mode == "policy":
        body = orjson.dumps({"error": {"code": "data_inspection_failed", "message": message}})
        w.write(whole(400, body))
    elif ECHO.mode == "not_json":
        w.write(whole(200, message.encode(), "text/plain"))
    elif ECHO.mode in ("stream_error_first", "stream_error_mid"):
        w.write(head(200, "text/event-stream", X_Echo_Key=ECHO.seen_keys[-1]))
        events = []
        if ECHO.mode == "stream_error_mid":
            chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1,
                     "choices": [{"index": 0, "delta": {"content": "hi"}}]}  # fmt: skip
            events.append(b"data: " + orjson.dumps(chunk) + b"\n\n")
        events.append(b"data: " + orjson.dumps({"error": {"message": message}}) + b"\n\n")
        for event in events:
            w.write(b"%x\r\n%s\r\n" % (len(event), event))
        w.write(b"0\r\n\r\n")
    await w.drain()
    return True


CASES = [
    # (mode, stream, status the client gets)
    ("bad_request", False, 400),
    ("bad_request", True, 400),
    ("policy", False, 400),
    ("policy", True, 400),
    ("auth", False, 502),
    ("not_found", False, 502),
    ("server", True, 502),
    ("odd", False, 502),
    ("not_json", False, 502),
    ("stream_error_first", True, 502),
    ("stream_error_mid", True, 200),
]
ROUTES = ["/sentinel/v1/chat/completions", "/llmage/v1/chat/completions"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[ScriptedUpstream]:
    loop = LoopThread("sentinel-upstream")
    up = ScriptedUpstream(echo_script)
    loop.call(up.start())
    ECHO.url = up.url
    try:
        yield up
    finally:
        loop.call(up.stop())
        loop.stop()


@pytest.fixture(scope="module", params=BACKENDS)
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: ScriptedUpstream,
) -> Iterator[UpstreamEnv]:
    tmp = tmp_path_factory.mktemp(f"sentinel-{request.param}")
    channel = ChannelDef("sentinel", upstream.url, KEY, ("deepseek-chat", "deepseek-reasoner"))
    with upstream_env(request.param, tmp, [channel]) as env:
        yield env


def forbidden(port: int) -> list[str]:
    """Every spelling of the sentinel and of the upstream's address that must not get out."""
    return [
        CORE,
        "SENTINEL",
        base64.b64encode(KEY.encode()).decode()[4:-4],
        base64.b64encode(f"Bearer {KEY}".encode()).decode()[12:-4],
        f"127.0.0.1:{port}",
        f"127.0.0.1%3A{port}",
        f"{port}/v1",
    ]


def leaks(text: str, port: int) -> list[str]:
    return [f for f in forbidden(port) if f in text]


def test_sentinel_never_leaves(
    env: UpstreamEnv, upstream: ScriptedUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="llmage")
    port = upstream.port
    ECHO.seen_keys.clear()
    acc = env.account("100")
    seen: list[str] = []
    usage_ids = []
    for mode, stream, status in CASES:
        for route in ROUTES:
            ECHO.mode = mode
            # A steering field too: its (debug) log line is one more place to look.
            body: dict[str, Any] = {"model": "deepseek-chat", "stream": stream, "api_key": "x"}
            if route.startswith("/llmage/"):
                body["prompt"] = "hello"
            else:
                body["messages"] = HELLO
            r = env.chat(acc, route, body)
            where = f"{mode} stream={stream} {route}"
            assert r.status_code == status, (where, r.text)
            seen.append(f"{where}\n{r.headers}\n{r.text}")
            # Failed calls name their usage record too.
            usage_ids.append(r.headers["x-llmage-usage-id"])
            if mode == "stream_error_mid":
                assert '"error"' in r.text and "[DONE]" not in r.text, r.text
            else:
                assert r.text and "[DONE]" not in r.text
    # The fake really received the sentinel, and really echoed it.
    assert set(ECHO.seen_keys) == {KEY}
    assert len(ECHO.seen_keys) == len(CASES) * len(ROUTES)
    for text in seen:
        assert not leaks(text, port), text
    assert "[redacted]" in "".join(seen) and "[upstream]" in "".join(seen)

    # Every hold released, every record written, none of it carrying the sentinel.
    assert env.wait_released(acc.user_id) == (100_000_000, 0)
    for usage_id in usage_ids:
        record = env.usage(usage_id)
        assert record is not None and record.amount == 0
        assert record.status == "error", record
    for table, rows in env.dump().items():
        for row in rows:
            found = leaks(row, port)
            if table == "channels":  # the admin's own configuration of this channel
                found = [f for f in found if f in (CORE, "SENTINEL")]
            assert not found, (table, row)

    assert not leaks(env.metrics(), port)
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    for record in caplog.records:
        assert not leaks(record.getMessage(), port), record.getMessage()
    assert not leaks(caplog.text, port)
