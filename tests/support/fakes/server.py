"""`FakeUpstream`: the base of every provider's fake server (aiohttp on loopback).

A provider's fake subclasses it and adds its real routes (`add_routes`), its real auth check
(`check_auth`) and its real body validation; the base gives it what every fake needs:

- `guard(request, op)`: records the request, runs the auth check, plays injected failures
  (`fail_next`), answers for the subclass when one applies;
- tasks with scripted lifecycles that advance ONE step PER POLL (never by wall clock, so tests
  do not depend on the machine's speed): `new_task()`, `step(task)`; `lifecycle` sets the
  default script (queued → running → succeeded, or failed / output moderation ...);
- result files served by the fake at URLs that EXPIRE: `publish(data, content_type)` gives a
  URL; `expire_files()` (or `file_ttl` seconds) makes every published URL answer 403 — the way
  re-hosting is proven: our copy must still work afterwards;
- `hold_creates()`: a create is recorded, then its reply waits until `release_creates()` (or
  forever): the exactly-once tests kill the gateway in between.

Everything a fake saw is in `requests` (method, path, query, headers, body) and `creates`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from support.servers import free_socket


@dataclass(frozen=True)
class Lifecycle:
    """A task's script: the generic states it passes through, one per poll; the last one is
    its end. Ends: "succeeded", "failed", "output_moderation", "gone" (the upstream forgot it).
    A fake renders these in its provider's own words."""

    steps: tuple[str, ...] = ("queued", "running", "succeeded")
    error_code: str = "InternalError"
    error_message: str = "the fake failed the task"

    @classmethod
    def succeeding(cls, running_polls: int = 1) -> Lifecycle:
        return cls(("queued",) + ("running",) * running_polls + ("succeeded",))

    @classmethod
    def failing(cls, code: str = "InternalError", message: str = "generation failed") -> Lifecycle:
        return cls(("queued", "running", "failed"), code, message)

    @classmethod
    def output_moderation(cls, code: str, message: str = "output refused") -> Lifecycle:
        return cls(("queued", "running", "output_moderation"), code, message)


@dataclass
class FakeTask:
    id: str
    body: Any  # the create request as the fake parsed it
    lifecycle: Lifecycle
    external_id: str | None = None
    created_at: float = field(default_factory=time.time)
    polls: int = 0
    result: dict[str, Any] = field(default_factory=dict)  # filled by the fake on success

    @property
    def state(self) -> str:
        return self.lifecycle.steps[min(self.polls, len(self.lifecycle.steps) - 1)]

    @property
    def finished(self) -> bool:
        return self.polls >= len(self.lifecycle.steps) - 1


@dataclass
class Failure:
    """An injected answer: the next `times` requests of operation `op` get it."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    op: str = ""


class FakeUpstream:
    """Subclass it: set `api_key`, implement `add_routes`, override `check_auth`."""

    api_key = "sk-fake-upstream-key"

    def __init__(self) -> None:
        self.url = ""  # base URL once started, e.g. http://127.0.0.1:PORT
        self.tasks: dict[str, FakeTask] = {}
        self.requests: list[Seen] = []
        self.creates = 0
        self.lifecycle = Lifecycle()
        self.file_ttl: float | None = None
        self.files: dict[str, tuple[bytes, str, float]] = {}
        self.file_hits: dict[str, int] = {}
        self._expired = False
        self._failures: dict[str, deque[Failure]] = {}
        self._gate: asyncio.Event | None = None
        self.create_arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # -- life -----------------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_get("/_files/{token}", self._file)
        self.add_routes(app.router)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = free_socket()
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self.create_arrived = asyncio.Event()

    async def stop(self) -> None:
        self.release_creates()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def host_port(self) -> str:
        return self.url.removeprefix("http://")

    # -- what a subclass implements -------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def check_auth(self, request: web.Request, body: bytes) -> web.StreamResponse | None:
        """None when the request is authorised; else the provider's own auth error reply.
        Default: `Authorization: Bearer <api_key>`."""
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return web.json_response({"error": {"code": "invalid_api_key"}}, status=401)

    # -- what a subclass calls ------------------------------------------------------------------

    async def guard(self, request: web.Request, op: str) -> tuple[bytes, web.StreamResponse | None]:
        """Record, authorise, play an injected failure. Returns (body, reply-or-None)."""
        body = await request.read()
        self.requests.append(
            Seen(request.method, request.path, dict(request.query), dict(request.headers), body, op)
        )
        denied = self.check_auth(request, body)
        if denied is not None:
            return body, denied
        queue = self._failures.get(op)
        if queue:
            failure = queue[0]
            failure.times -= 1
            if failure.times <= 0:
                queue.popleft()
            return body, web.json_response(
                failure.body, status=failure.status, headers=failure.headers
            )
        return body, None

    def fail_next(
        self,
        op: str,
        status: int,
        body: Any,
        *,
        times: int = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next `times` requests of `op` (the fake's own operation names) get this answer
        (rate limits, upstream insufficient balance, auth and moderation refusals...)."""
        self._failures.setdefault(op, deque()).append(Failure(status, body, headers or {}, times))

    def new_task(self, body: Any, *, external_id: str | None = None, prefix: str = "t") -> FakeTask:
        self.creates += 1
        task = FakeTask(f"{prefix}-{secrets.token_hex(8)}", body, self.lifecycle, external_id)
        self.tasks[task.id] = task
        self.create_arrived.set()
        return task

    def step(self, task: FakeTask) -> str:
        """The task's state for this poll; each poll moves it one step along its script."""
        state = task.state
        task.polls += 1
        return state

    async def created(self) -> None:
        """Call after recording a create, before replying: waits while creates are held."""
        if self._gate is not None:
            await self._gate.wait()

    def hold_creates(self) -> None:
        self._gate = asyncio.Event()

    def release_creates(self) -> None:
        if self._gate is not None:
            self._gate.set()
            self._gate = None

    # -- expiring result files ------------------------------------------------------------------

    def publish(self, data: bytes, content_type: str) -> str:
        token = secrets.token_urlsafe(12)
        self.files[token] = (data, content_type, time.time())
        return f"{self.url}/_files/{token}"

    def expire_files(self) -> None:
        """From now on every published URL answers 403, like an upstream's expired link."""
        self._expired = True

    async def _file(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        self.file_hits[token] = self.file_hits.get(token, 0) + 1
        found = self.files.get(token)
        if found is None:
            return web.Response(status=404, text="no such file")
        data, ctype, published = found
        if self._expired or (self.file_ttl is not None and time.time() - published > self.file_ttl):
            return web.Response(status=403, text="Request has expired")
        return web.Response(body=data, content_type=ctype)
