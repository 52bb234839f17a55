"""Real servers on loopback for tests: llmage itself (uvicorn in a thread) and a fake OpenAI
upstream (aiohttp) whose behaviour each test can set."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import uvicorn
from aiohttp import web

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread; `call` runs a coroutine there and waits for it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def free_socket() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets it recognises as TCP,
    # and without it every kept-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


class LlmageServer:
    """The real app under uvicorn on a free port, in its own thread and loop."""

    def __init__(self, app: Any, sock: socket.socket | None = None) -> None:
        # A socket bound beforehand lets settings name the server's own URL (public_base_url).
        self._sock = sock or free_socket()
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            loop="asyncio",
            http="httptools",
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        # Generous: start-up migrates the database, which a loaded machine may take a while to do.
        for _ in range(2400):
            if self._server.started:
                return
            if not self._thread.is_alive():
                raise RuntimeError("llmage test server failed to start")
            threading.Event().wait(0.025)
        raise RuntimeError("llmage test server did not start in 60 s")

    @property
    def app(self) -> Any:
        return self._server.config.app

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)
        self._sock.close()


Handler = Callable[[dict[str, Any]], Awaitable[web.StreamResponse | dict[str, Any]]]


@dataclass
class FakeOpenAI:
    """A fake OpenAI-compatible upstream: records requests, answers as configured.

    `usage` fixes the usage it reports; `status`/`error_body` make it fail; `delay` slows it;
    `stream_chunks` is how many content chunks a stream carries; `cut_after` ends the stream
    (abruptly) after that many chunks without a usage chunk."""

    usage: dict[str, int] = field(
        default_factory=lambda: {"prompt_tokens": 7, "completion_tokens": 5}
    )
    status: int = 200
    error_body: dict[str, Any] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    stream_chunks: int = 5
    cut_after: int | None = None
    # After this many chunks, send only SSE keep-alive comments until the peer closes the
    # connection (then `stall_ended` is set): a stream only the client's leaving can end.
    stall_after: int | None = None
    stall_ended: threading.Event = field(default_factory=threading.Event)
    reasoning: bool = False
    gate: asyncio.Event | None = None  # when set, each request waits for it to open
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    api_key: str = "sk-upstream-secret"
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        # Like a real upstream, a handler stops when its client (llmage) hangs up; any still
        # stalling when a module ends are cancelled, not waited for.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        sock = free_socket()
        site = web.SockSite(self._runner, sock)
        await site.start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _stall(self, resp: web.StreamResponse) -> None:
        try:
            for _ in range(3000):  # bounded: one minute at most
                await resp.write(b": keep-alive\n\n")
                await asyncio.sleep(0.02)
        except ConnectionError:
            self.stall_ended.set()  # the peer closed the connection
        except asyncio.CancelledError:
            self.stall_ended.set()  # aiohttp may cancel the handler when the peer leaves
            raise

    def _usage(self) -> dict[str, Any]:
        u = dict(self.usage)
        u["total_tokens"] = u["prompt_tokens"] + u["completion_tokens"]
        return u

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"error": {"message": "bad key", "code": "invalid_api_key"}}, status=401
            )
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return web.json_response(
                self.error_body or {"error": {"message": "boom"}}, status=self.status
            )
        base = {"id": "chatcmpl-fake", "created": 1, "model": body["model"]}
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "fake answer"}
            if self.reasoning:
                message["reasoning_content"] = "thinking"
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "vendor_extra": {"kept": True},
                    "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    "usage": self._usage(),
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {**base, "object": "chat.completion.chunk"}

        async def send(payload: dict[str, Any]) -> None:
            await resp.write(b"data: " + orjson.dumps(payload) + b"\n\n")

        await send(
            {**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
        )
        for i in range(self.stream_chunks):
            if self.cut_after is not None and i >= self.cut_after:
                request.transport.close()  # type: ignore[union-attr]
                return resp
            if self.stall_after is not None and i >= self.stall_after:
                await self._stall(resp)
                return resp
            if self.chunk_delay:
                await asyncio.sleep(self.chunk_delay)
            delta = (
                {"reasoning_content": f"r{i}"}
                if self.reasoning and i == 0
                else {"content": f"tok{i} "}
            )
            await send({**chunk, "choices": [{"index": 0, "delta": delta}]})
        await send({**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            await send({**chunk, "choices": [], "usage": self._usage()})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp
