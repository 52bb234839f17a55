"""The front door for hot routes (app.HotPath): found by exact path or by pattern, counted in
the request metrics, a bug answered as a 500 in the dialect's shape, a bug after the answer
started ended cleanly. Driven as plain ASGI, so every message the server would see is checked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from llmage.app import HotPath, _LeanRoute
from llmage.dialects.http import JSONBytes
from llmage.domain.errors import NotFound
from llmage.observability import metrics

Sent = list[dict[str, Any]]


async def ok(request: Request) -> Response:
    return JSONBytes({"path_params": request.path_params}, headers={"x-llmage-usage-id": "u1"})


async def boom(request: Request) -> Response:
    raise RuntimeError("kaboom sk-leaked")


async def not_found(request: Request) -> Response:
    raise NotFound("No such thing", param="model")


async def breaks_mid_stream(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b"data: 1\n\n"
        raise RuntimeError("mid-stream bug")

    return StreamingResponse(body(), media_type="text/event-stream")


def hot_path() -> tuple[HotPath, list[str]]:
    rest_hits: list[str] = []
    app = FastAPI()

    async def rest(scope: Any, receive: Any, send: Any) -> None:
        rest_hits.append(scope["path"])
        await Response(b"rest")(scope, receive, send)

    routes = [
        _LeanRoute("/t/ok", ok, methods=["POST"], name="ok"),
        _LeanRoute("/t/boom", boom, methods=["POST"], name="boom"),
        _LeanRoute("/t/missing", not_found, methods=["POST"], name="missing"),
        _LeanRoute("/t/stream", breaks_mid_stream, methods=["POST"], name="stream"),
        _LeanRoute("/{platform}/t/ok", ok, methods=["POST"], name="platform-ok"),
    ]
    hp = HotPath(app, routes)
    hp._rest = rest  # type: ignore[assignment]
    return hp, rest_hits


def call(hp: HotPath, path: str, method: str = "POST", root_path: str = "") -> Sent:
    sent: Sent = []
    scope = {
        "type": "http",
        "method": method,
        "path": root_path + path,
        "root_path": root_path,
        "raw_path": (root_path + path).encode(),
        "query_string": b"",
        "headers": [],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 1),
    }

    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays: no disconnect
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(hp(scope, receive, send))
    return sent


def count(route: str, status: int) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "llmage_requests_total", {"route": route, "status": str(status)}
    )
    return value or 0.0


def test_exact_path_is_served_and_counted() -> None:
    hp, rest = hot_path()
    before = count("/t/ok", 200)
    sent = call(hp, "/t/ok")
    assert sent[0]["status"] == 200
    assert (b"x-llmage-usage-id", b"u1") in sent[0]["headers"]
    assert sent[1]["body"] == b'{"path_params":{}}'
    assert count("/t/ok", 200) == before + 1
    assert rest == []


def test_pattern_route_gets_its_path_params() -> None:
    hp, _ = hot_path()
    before = count("/{platform}/t/ok", 200)
    sent = call(hp, "/sim/t/ok")
    assert sent[1]["body"] == b'{"path_params":{"platform":"sim"}}'
    assert count("/{platform}/t/ok", 200) == before + 1


def test_under_a_root_path_routes_still_match() -> None:
    hp, rest = hot_path()
    sent = call(hp, "/t/ok", root_path="/gw")
    assert sent[0]["status"] == 200 and rest == []


def test_other_methods_and_paths_go_to_the_app() -> None:
    hp, rest = hot_path()
    call(hp, "/t/ok", method="GET")
    call(hp, "/t/nope")
    assert rest == ["/t/ok", "/t/nope"]


def test_a_bug_is_a_counted_500_in_the_dialect_shape() -> None:
    hp, _ = hot_path()
    before = count("/t/boom", 500)
    sent = call(hp, "/t/boom")
    assert sent[0]["status"] == 500
    body = sent[1]["body"]
    assert b'"code":"internal_error"' in body and b"kaboom" not in body and b"sk-" not in body
    assert count("/t/boom", 500) == before + 1


def test_a_domain_error_keeps_its_status_and_param() -> None:
    hp, _ = hot_path()
    sent = call(hp, "/t/missing")
    assert sent[0]["status"] == 404
    assert b'"param":"model"' in sent[1]["body"]


def test_a_bug_after_the_answer_started_ends_the_body_once() -> None:
    hp, _ = hot_path()
    sent = call(hp, "/t/stream")
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) == 1 and starts[0]["status"] == 200
    assert sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert sum(1 for m in sent if m["type"] == "http.response.body" and not m.get("more_body")) == 1
