"""A fast mock OpenAI-compatible upstream for the benchmark, loopback only.

It must never be the bottleneck: the gateways under test (one core each) do far
more work per request than this server, so it is a bare asyncio Protocol with a
hand-rolled HTTP/1.1 keep-alive parser and pre-rendered responses. Only the
bits of HTTP the gateways and wrk actually send are handled: Content-Length or
chunked request bodies, keep-alive, `Connection: close`, pipelining.

Endpoints:
  POST /v1/chat/completions   non-stream: one chat.completion with `usage`
                              `"stream": true`: SSE over chunked encoding,
                              STREAM_CHUNKS deltas, a usage chunk when
                              `stream_options.include_usage` is true, `[DONE]`
  GET  /v1/models             a model list
  GET  /healthz               readiness probe for the harness
  GET  /stats                 {"chat_requests": N}, for the harness's checks

Run: python bench/mock_upstream.py --port 18000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import Any, cast

try:  # orjson is in the gateway's venv; fall back so the mock runs anywhere.
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

except ImportError:  # pragma: no cover

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":")).encode()


STREAM_CHUNKS = 20
PROMPT_TOKENS = 9
# One delta per chunk; the completion token count equals the chunk count so the
# non-stream and stream usage agree.
COMPLETION_TOKENS = STREAM_CHUNKS
CREATED = 1_700_000_000
MAX_HEADER_BYTES = 64 * 1024

_WORDS = [
    "Hello",
    "!",
    " How",
    " can",
    " I",
    " help",
    " you",
    " today",
    "?",
    " I",
    " am",
    " a",
    " mock",
    " upstream",
    " for",
    " the",
    " llmage",
    " benchmark",
    " run",
    ".",
]


def _usage() -> dict[str, Any]:
    return {
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    }


def _head(status: str, content_type: str, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{extra}Server: llmage-bench-mock\r\n"
    ).encode()


def _fixed(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    return _head(status, content_type, f"Content-Length: {len(body)}\r\n") + b"\r\n" + body


def render_completion(model: str) -> bytes:
    body = _dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(_WORDS)},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(),
        }
    )
    return _fixed("200 OK", body)


def _sse(obj: Any) -> bytes:
    event = b"data: " + (obj if isinstance(obj, bytes) else _dumps(obj)) + b"\n\n"
    # One SSE event per HTTP chunk, as real upstreams flush per token.
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


def render_stream(model: str, include_usage: bool) -> bytes:
    base = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_bench",
    }
    parts = [
        _head(
            "200 OK",
            "text/event-stream",
            "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n",
        )
        + b"\r\n"
    ]
    for i, word in enumerate(_WORDS[:STREAM_CHUNKS]):
        delta: dict[str, Any] = {"content": word}
        if i == 0:
            delta = {"role": "assistant", "content": word}
        parts.append(
            _sse(
                {
                    **base,
                    "choices": [
                        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}
                    ],
                }
            )
        )
    parts.append(
        _sse(
            {
                **base,
                "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
            }
        )
    )
    if include_usage:
        parts.append(_sse({**base, "choices": [], "usage": _usage()}))
    parts.append(_sse(b"[DONE]"))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


MODELS_BODY = _dumps(
    {
        "object": "list",
        "data": [{"id": "qwen3-max", "object": "model", "created": CREATED, "owned_by": "mock"}],
    }
)


class _Cache:
    """Pre-rendered responses keyed by the echoed model name (bounded)."""

    def __init__(self) -> None:
        self._items: dict[tuple[str, str, bool], bytes] = {}

    def get(self, kind: str, model: str, include_usage: bool = False) -> bytes:
        key = (kind, model, include_usage)
        found = self._items.get(key)
        if found is None:
            if len(self._items) > 256:  # clients sending random model names
                self._items.clear()
            found = (
                render_completion(model)
                if kind == "completion"
                else render_stream(model, include_usage)
            )
            self._items[key] = found
        return found


CACHE = _Cache()
STATS = {"chat_requests": 0}


class _BadRequest(Exception):
    pass


class MockProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: cast, don't check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        try:
            # Loop: one read may carry several pipelined requests.
            while self.transport is not None and self._try_one():
                pass
        except _BadRequest as exc:
            self._reply(_fixed("400 Bad Request", _error(str(exc))), close=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def _try_one(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEADER_BYTES:
                raise _BadRequest("headers too large")
            return False
        head = bytes(self.buf[:end]).decode("latin-1")
        lines = head.split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError as exc:
            raise _BadRequest("bad request line") from exc
        length = 0
        chunked = False
        close = version == "HTTP/1.0"
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value.strip())
            elif lname == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif lname == "connection":
                v = value.strip().lower()
                # HTTP/1.1 keeps alive unless told to close; 1.0 the reverse.
                close = v != "keep-alive" if version == "HTTP/1.0" else v == "close"
        start = end + 4
        if chunked:
            parsed = _dechunk(self.buf, start)
            if parsed is None:
                return False
            body, consumed = parsed
        else:
            if len(self.buf) - start < length:
                return False
            body = bytes(self.buf[start : start + length])
            consumed = start + length
        del self.buf[:consumed]
        self._reply(self._route(method, target.split("?", 1)[0], body), close)
        return True

    def _route(self, method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and path.endswith("/chat/completions"):
            try:
                req = _loads(body) if body else {}
            except ValueError:
                return _fixed("400 Bad Request", _error("invalid JSON"))
            if not isinstance(req, dict):
                return _fixed("400 Bad Request", _error("body must be an object"))
            model = str(req.get("model") or "qwen3-max")
            # Counted so the harness can check that each client request reached
            # the upstream exactly once (no gateway-side caching or retries).
            STATS["chat_requests"] += 1
            if req.get("stream") is True:
                opts = req.get("stream_options")
                include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
                return CACHE.get("stream", model, include_usage)
            return CACHE.get("completion", model)
        if method == "GET" and path.endswith("/models"):
            return _fixed("200 OK", MODELS_BODY)
        if method == "GET" and path == "/stats":
            return _fixed("200 OK", _dumps(STATS))
        if method == "GET" and path == "/healthz":
            return _fixed("200 OK", b'{"ok":true}')
        return _fixed("404 Not Found", _error(f"no route {method} {path}"))

    def _reply(self, payload: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(payload)
        if close:
            self.transport.close()
            self.transport = None


def _error(message: str) -> bytes:
    return _dumps({"error": {"message": message, "type": "invalid_request_error"}})


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """Decode a chunked body starting at `pos`; None while it is incomplete."""
    out = bytearray()
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        try:
            size = int(bytes(buf[pos:eol]).split(b";", 1)[0], 16)
        except ValueError as exc:
            raise _BadRequest("bad chunk size") from exc
        pos = eol + 2
        if size == 0:
            # Skip (absent) trailers up to the blank line.
            fin = buf.find(b"\r\n", pos)
            while fin >= 0 and fin != pos:
                pos = fin + 2
                fin = buf.find(b"\r\n", pos)
            if fin < 0:
                return None
            return bytes(out), fin + 2
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


async def serve(host: str, port: int, ready_file: str | None = None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(MockProtocol, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready_file:
        with open(ready_file, "w") as fh:
            fh.write(str(time.time()))
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18000)
    parser.add_argument("--ready-file", default=None)
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("the mock serves loopback only")
    coro = serve(args.host, args.port, args.ready_file)
    try:  # uvloop roughly halves the per-request cost of the event loop.
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    main()
