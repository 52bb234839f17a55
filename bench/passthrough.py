"""The Python floor: a bare aiohttp pass-through gateway, loopback only.

What any Python gateway has to do at least, and nothing more: check the bearer
key against a dict, parse the JSON body to route by `model`, relay to the
upstream over a pooled aiohttp ClientSession (non-stream: the whole body;
stream: bytes as they arrive), no accounting, no limits, no logs. uvloop as
the event loop, as llmage's server uses. llmage's throughput and latency are
judged against this on the same run.

    python bench/passthrough.py --port 18100 --upstream http://127.0.0.1:18000/v1 \
        --key sk-pass --model qwen3-max
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
import orjson
from aiohttp import web

_JSON = "application/json"


def _error(status: int, message: str) -> web.Response:
    body = orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})
    return web.Response(status=status, body=body, content_type=_JSON)


class Passthrough:
    def __init__(self, keys: dict[str, str], routes: dict[str, str]) -> None:
        self.keys = keys  # bearer key -> account name
        self.routes = routes  # model -> upstream chat completions URL
        self.session: aiohttp.ClientSession | None = None

    async def start(self, _app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)

    async def stop(self, _app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    async def chat(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.keys:
            return _error(401, "Invalid API key")
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return _error(400, "Body is not JSON")
        url = self.routes.get(body.get("model")) if isinstance(body, dict) else None
        if url is None:
            return _error(404, "Unknown model")
        assert self.session is not None
        headers = {"Content-Type": _JSON, "Authorization": "Bearer sk-upstream"}
        async with self.session.post(url, data=raw, headers=headers) as upstream:
            ctype = upstream.headers.get("Content-Type", _JSON)
            if not body.get("stream"):
                data = await upstream.read()
                return web.Response(
                    status=upstream.status, body=data, headers={"Content-Type": ctype}
                )
            out = web.StreamResponse(status=upstream.status, headers={"Content-Type": ctype})
            await out.prepare(request)
            async for piece in upstream.content.iter_any():
                await out.write(piece)
            await out.write_eof()
            return out

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(body=b'{"status":"ok"}', content_type=_JSON)


def build_app(keys: dict[str, str], routes: dict[str, str]) -> web.Application:
    gw = Passthrough(keys, routes)
    app = web.Application()
    app.on_startup.append(gw.start)
    app.on_cleanup.append(gw.stop)
    app.router.add_post("/v1/chat/completions", gw.chat)
    app.router.add_get("/healthz", gw.healthz)
    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True, help="upstream base URL, e.g. http://.../v1")
    p.add_argument("--key", required=True, help="the one bearer key accepted")
    p.add_argument("--model", action="append", default=[], help="model routed upstream")
    args = p.parse_args()
    if not args.host.startswith("127."):
        raise SystemExit("the pass-through listens on loopback only")
    url = args.upstream.rstrip("/") + "/chat/completions"
    routes = {m: url for m in (args.model or ["qwen3-max"])}
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is in the gateway's venv
        pass
    web.run_app(
        build_app({args.key: "bench"}, routes),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
