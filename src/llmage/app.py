"""create_app: routers, middleware, error mapping and lifespan. No business logic here."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmage.console import errors as console_errors
from llmage.console.api import ROUTERS as console_routers
from llmage.console.web import admin_pages as console_admin_pages
from llmage.console.web import pages as console_pages
from llmage.dialects import api_doc
from llmage.dialects.http import JSONBytes
from llmage.dialects.media.routes import router as media_router
from llmage.dialects.native import errors as native_errors
from llmage.dialects.native.routes import router as native_router
from llmage.dialects.native.video import router as native_video_router
from llmage.dialects.newapi import errors as newapi_errors
from llmage.dialects.newapi.routes import router as newapi_router
from llmage.dialects.openai import errors as openai_errors
from llmage.dialects.openai.images import router as openai_images_router
from llmage.dialects.openai.routes import router as openai_router
from llmage.dialects.openai.videos import router as openai_videos_router
from llmage.dialects.platform.media_routes import router as platform_media_router
from llmage.dialects.platform.routes import router as platform_router
from llmage.domain.errors import InvalidRequest, LlmageError, NotFound
from llmage.observability import metrics
from llmage.observability.logs import configure
from llmage.services.platform import Platform
from llmage.settings import Settings, get_settings

log = logging.getLogger("llmage.http")


def _dialect_error(path: str, exc: LlmageError) -> Response:
    """The one place that picks the error envelope: by the dialect the path belongs to. A call
    that failed after it got a usage record names it, as a successful one does."""
    if path.startswith(("/llmage/", "/media/")):
        response = native_errors.error_response(exc)
    elif path.startswith("/api/"):
        response = console_errors.error_response(exc)
    elif path.startswith("/v1/video/generations"):
        response = newapi_errors.error_response(exc)
    else:
        response = openai_errors.error_response(exc)
    if exc.usage_id:
        response.headers["x-llmage-usage-id"] = exc.usage_id
    return response


def _bug_response(path: str, exc: Exception) -> Response:
    # A bug: logged with its trace for us, a plain sentence for the client.
    log.error("unhandled error on %s", path, exc_info=exc)
    err = LlmageError("Internal server error")
    err.status, err.type, err.code = 500, "server_error", "internal_error"
    return _dialect_error(path, err)


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches({**scope, "method": next(iter(route.methods))})
            if match is Match.FULL:
                methods.update(route.methods)
    return sorted(methods)


class BugBarrier:
    """Pure ASGI: a bug (any exception a handler did not turn into a response) is answered with
    a 500 in the dialect's shape and ends here. Starlette's own last-resort handler re-raises
    after answering, so the server logs it again and drops the client's keep-alive connection;
    this one does not. If the response had already started, it is ended cleanly instead (a
    truncated body, the connection intact)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = ended = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, ended
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                ended = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if not started:
                await _bug_response(scope["path"], exc)(scope, receive, send)
                return
            path = scope["path"]
            log.error("unhandled error on %s after the response started", path, exc_info=exc)
            if not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


class _LeanRoute(Route):
    """A hot endpoint (request in, response out) served without per-route wrapping, with the
    same error mapping as the app's handlers. Records itself in the scope for metrics."""

    def __init__(self, path: str, endpoint: Any, *, methods: list[str], name: str) -> None:
        super().__init__(path, endpoint, methods=methods, name=name)
        self._endpoint = endpoint

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self
        try:
            response = await self._endpoint(Request(scope, receive, send))
        except LlmageError as exc:
            response = _dialect_error(scope["path"], exc)
        except Exception as exc:
            response = _bug_response(scope["path"], exc)
        await response(scope, receive, send)


class HotPath:
    """The front door: the chat routes go straight to their lean handlers, everything else to
    FastAPI. FastAPI's middleware stack (six layers) costs more per request than our whole
    ledger write; the hot routes need none of it. Attribute access falls through to the app.

    A hot route gets the same metrics and bug barrier as the app (MetricsMiddleware around
    BugBarrier), folded into one send wrapper; a path with no parameters is found by a dict
    lookup instead of trying each route's regex."""

    def __init__(self, app: FastAPI, routes: list[_LeanRoute]) -> None:
        self.app = app
        self._routes = routes
        self._exact: dict[str, _LeanRoute] = {}
        for route in reversed(routes):  # the first route for a path wins, as in matching
            if not route.param_convertors and "POST" in (route.methods or ()):
                self._exact[route.path] = route
        self._rest = NoSniff(app)  # outside FastAPI's own error layer: its 500s get it too
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            route = None if scope.get("root_path") else self._exact.get(scope["path"])
            if route is not None:
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
            else:
                for candidate in self._routes:
                    match, child = candidate.matches(scope)
                    if match is Match.FULL:
                        scope.update(child)
                        route = candidate
                        break
            if route is not None:
                scope["route"] = route
                scope["app"] = self.app
                await self._serve(route, scope, receive, send)
                return
        await self._rest(scope, receive, send)

    async def _serve(self, route: _LeanRoute, scope: Scope, receive: Receive, send: Send) -> None:
        start = time.perf_counter()
        started = ended = False
        children = self._children

        async def tracked(message: Message) -> None:
            nonlocal started, ended
            kind = message["type"]
            if kind == "http.response.start":
                started = True
                status = message["status"]
                child = children.get((route.path, status))
                if child is None:
                    child = _metric_children(route.path, status)
                    children[(route.path, status)] = child
                child[0].observe(time.perf_counter() - start)
                child[1].inc()
            elif kind == "http.response.body" and not message.get("more_body"):
                ended = True
            await send(message)

        try:
            await route.handle(scope, receive, tracked)
        except Exception as exc:
            # As BugBarrier: a 500 in the dialect's shape, or a clean end if already answering.
            if not started:
                await _bug_response(scope["path"], exc)(scope, receive, tracked)
                return
            log.error(
                "unhandled error on %s after the response started", scope["path"], exc_info=exc
            )
            if not ended:
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def _metric_children(path: str, status: int) -> tuple[Any, Any]:
    # labels() takes a lock and builds tuples: once per (path, status) pair.
    return metrics.LATENCY.labels(path), metrics.REQUESTS.labels(path, str(status))


class NoSniff:
    """Pure ASGI: every answer says `X-Content-Type-Options: nosniff` (unless it set it itself),
    so no browser reads an error body or a download as anything but its declared type. Media
    responses set it themselves; this covers the ones the framework makes (405, 500, ...)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(name.lower() == b"x-content-type-options" for name, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_wrapper)


class MetricsMiddleware:
    """Pure ASGI (BaseHTTPMiddleware would add a task per request on the hot path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                path = getattr(scope.get("route"), "path", "unmatched")
                child = self._children.get((path, status))
                if child is None:
                    child = _metric_children(path, status)
                    self._children[(path, status)] = child
                child[0].observe(time.perf_counter() - start)
                child[1].inc()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            # Only if something escaped the bug barrier below: still count it.
            if status == 500:
                path = getattr(scope.get("route"), "path", "unmatched")
                metrics.REQUESTS.labels(path, "500").inc()
            raise


def create_app(settings: Settings | None = None) -> HotPath:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = Platform(settings)
        await platform.start(workers=settings.task_workers, serve=True)
        app.state.platform = platform
        # Everything built at start-up lives as long as the process: keep it out of the
        # collector's way, so collections under load only walk per-request objects.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await platform.close()

    app = FastAPI(
        title="llmage",
        version="0.1.0",
        description="One billed API in front of many chat, image and video models. "
        "Dialects: native (/llmage), OpenAI (/v1), platform-prefixed (/{platform}/v1).",
        lifespan=lifespan,
        # /docs is the console's own page on vendored Swagger UI files (works offline); the
        # defaults load from a CDN.
        docs_url=None,
        redoc_url=None,
    )

    @app.exception_handler(LlmageError)
    async def on_llmage_error(request: Request, exc: LlmageError) -> Response:
        return _dialect_error(request.url.path, exc)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):
            return console_errors.error_response(console_errors.from_validation(list(exc.errors())))
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return _dialect_error(
            request.url.path, InvalidRequest(str(first.get("msg", "Invalid request")), param=param)
        )

    @app.exception_handler(HTTPException)
    async def on_http(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return _dialect_error(request.url.path, NotFound(f"No route {request.url.path}"))
        err = LlmageError(str(exc.detail))
        err.status = exc.status_code
        response = _dialect_error(request.url.path, err)
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; RFC 9110 wants
            # every method the resource supports (GET and POST /llmage/tasks are two routes).
            response.headers["Allow"] = ", ".join(_allowed_methods(request.app, request.scope))
        return response

    @app.get(
        "/healthz",
        tags=["Operations"],
        summary="Liveness and database reachability",
        responses={
            200: {
                "description": "Up, and the database answers",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["status"],
                            "properties": {"status": {"const": "ok"}},
                        }
                    }
                },
            },
            "5XX": {"description": "The database does not answer"},
        },
    )
    async def healthz(request: Request) -> Response:
        platform: Platform = request.app.state.platform
        await platform.db.ping()
        return JSONBytes({"status": "ok"})

    @app.get(
        "/metrics",
        tags=["Operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {
                "description": "Prometheus text exposition format",
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            }
        },
    )
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    if not settings.serve_api:
        # A poller-only instance: health and metrics for the orchestrator, no API.
        return HotPath(app, [])
    routers = (
        native_router,
        native_video_router,
        media_router,
        openai_router,
        openai_videos_router,
        openai_images_router,
        newapi_router,
        *console_routers,
        console_pages.router,
        console_admin_pages.router,
        # Last: the `/{platform}` prefix matches broadly.
        platform_router,
        platform_media_router,
    )
    app.mount(console_pages.STATIC_PREFIX, console_pages.static_files(), name="static")
    for router in routers:
        app.include_router(router)
    api_doc.install(app)
    # Hot endpoints served by plain Starlette routes placed first, in the same relative order
    # (taken from the routers themselves: the app may wrap included routers in its own types).
    lean_routes = [
        _LeanRoute(r.path, r.endpoint, methods=list(r.methods or ()), name=f"lean:{r.name}")
        for router in routers
        for r in router.routes
        if isinstance(r, APIRoute) and getattr(r.endpoint, "lean", False)
    ]
    # Inside Starlette's outermost error middleware, so bugs stop here (see BugBarrier); the
    # metrics around it see the 500s.
    app.add_middleware(BugBarrier)
    app.add_middleware(MetricsMiddleware)
    return HotPath(app, lean_routes)


def create_worker_app() -> HotPath:
    """The app of one `serve --workers N` process, configured like the parent (from the
    environment: worker processes are spawned, not forked)."""
    settings = get_settings()
    configure(settings.log_level, settings.log_json)
    return create_app(settings)
