"""A fake Kling upstream (PROVIDERS.md §6) on the shared framework.

Auth as Kling checks it: `Authorization: Bearer <JWT>`, header HS256/JWT, signature with the
secret key of the access key in `iss`, `nbf` not in the future and `exp` not past (codes 1001
empty, 1002 invalid, 1003 not yet valid, 1004 expired; HTTP 401). Bodies: `model_name` among the
models, `prompt` ≤ 2500, `duration` a STRING "5" | "10", `mode` std | pro, `aspect_ratio` only on
text2video, `cfg_scale` in [0, 1] and never on v2.x; image2video needs `image` (an http(s) URL or
raw base64 without a `data:` prefix), `image_tail` likewise; `external_task_id` unique. Tasks move
submitted → processing → succeed | failed one step per poll; the failure reason is only in
`data.task_status_msg` while `message` stays "SUCCEED". Query by task id or external id.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from support.fakes import FakeTask, FakeUpstream, tiny_mp4

MODELS = ("kling-v1", "kling-v1-6", "kling-v2-master", "kling-v2-1")
DURATIONS = ("5", "10")


def reply(code: int, message: str, data: Any = None, status: int = 200) -> web.Response:
    body = {"code": code, "message": message, "request_id": "req-fake", "data": data}
    return web.json_response(body, status=status)


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class KlingFake(FakeUpstream):
    access_key = "ak-kling-fake-0123"
    secret_key = "sk-kling-fake-secret-4567"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.clock = clock
        self.units = "1"  # what a finished task reports as final_unit_deduction
        self.duration = "5.042"  # what a finished video says it lasted
        self.tokens_seen: set[str] = set()
        self.by_external: dict[str, str] = {}

    # -- auth -----------------------------------------------------------------------------------

    def check_auth(self, request: web.Request, body: bytes) -> web.StreamResponse | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return reply(1001, "Authorization is empty", status=401)
        if not header.startswith("Bearer "):
            return reply(1002, "Authorization is invalid", status=401)
        token = header.removeprefix("Bearer ")
        try:
            head_b64, payload_b64, sig_b64 = token.split(".")
            head = json.loads(_unb64(head_b64))
            claims = json.loads(_unb64(payload_b64))
            sig = _unb64(sig_b64)
        except (ValueError, binascii.Error):
            return reply(1002, "Authorization is invalid", status=401)
        if head != {"alg": "HS256", "typ": "JWT"} or claims.get("iss") != self.access_key:
            return reply(1002, "Authorization is invalid", status=401)
        want = hmac.new(
            self.secret_key.encode(), f"{head_b64}.{payload_b64}".encode(), hashlib.sha256
        ).digest()
        if not hmac.compare_digest(sig, want):
            return reply(1002, "Authorization is invalid", status=401)
        now = self.clock()
        if not isinstance(claims.get("nbf"), int) or claims["nbf"] > now:
            return reply(1003, "Authorization is not active yet", status=401)
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now:
            return reply(1004, "Authorization has expired", status=401)
        self.tokens_seen.add(token)
        return None

    # -- routes ---------------------------------------------------------------------------------

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/videos/{family:text2video|image2video}", self._create)
        router.add_get("/v1/videos/{family:text2video|image2video}", self._list)
        router.add_get("/v1/videos/{family:text2video|image2video}/{id}", self._query)

    def _refuse(self, family: str, body: Any) -> str | None:
        """Kling's 1201 message for a body it refuses, else None."""
        if not isinstance(body, dict):
            return "request body must be a JSON object"
        model = body.get("model_name", "kling-v1")
        if model not in MODELS:
            return f"model_name is invalid: {model}"
        prompt = body.get("prompt")
        if family == "text2video" and not prompt:
            return "prompt is required"
        if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 2500):
            return "prompt is invalid"
        duration = body.get("duration", "5")
        if not isinstance(duration, str) or duration not in DURATIONS:
            return "duration must be one of '5', '10' (a string)"
        if body.get("mode", "std") not in ("std", "pro"):
            return "mode must be std or pro"
        if "cfg_scale" in body:
            cfg = body["cfg_scale"]
            if str(model).startswith("kling-v2"):
                return "cfg_scale is not supported by this model"
            if isinstance(cfg, bool) or not isinstance(cfg, int | float) or not 0 <= cfg <= 1:
                return "cfg_scale must be within [0, 1]"
        ext = body.get("external_task_id")
        if ext is not None and (not isinstance(ext, str) or ext in self.by_external):
            return "external_task_id is duplicated"
        if family == "text2video":
            if body.get("aspect_ratio", "16:9") not in ("16:9", "9:16", "1:1"):
                return "aspect_ratio is invalid"
            if "image" in body or "image_tail" in body:
                return "image is not a text2video field"
            return None
        if "aspect_ratio" in body:
            return "aspect_ratio is not an image2video field"
        if not body.get("image"):
            return "image is required"
        for field in ("image", "image_tail"):
            if field in body and not self._image_ok(body[field]):
                return f"{field} must be a URL or raw base64 without a data: prefix"
        return None

    @staticmethod
    def _image_ok(value: Any) -> bool:
        if not isinstance(value, str) or not value:
            return False
        if value.startswith(("http://", "https://")):
            return True
        if value.startswith("data:"):
            return False
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        return True

    async def _create(self, request: web.Request) -> web.StreamResponse:
        raw, denied = await self.guard(request, "create")
        if denied is not None:
            return denied
        family = request.match_info["family"]
        try:
            body = json.loads(raw)
        except ValueError:
            return reply(1200, "request body is not JSON", status=400)
        problem = self._refuse(family, body)
        if problem is not None:
            return reply(1201, problem, status=400)
        ext = body.get("external_task_id")
        task = self.new_task({**body, "family": family}, external_id=ext, prefix="kling")
        if ext:
            self.by_external[ext] = task.id
        await self.created()
        return reply(0, "SUCCEED", self._data(task, "queued"))

    def _data(self, task: FakeTask, state: str) -> dict[str, Any]:
        word = {"queued": "submitted", "running": "processing", "succeeded": "succeed"}.get(
            state, "failed"
        )
        now_ms = int(self.clock() * 1000)
        data: dict[str, Any] = {
            "task_id": task.id,
            "task_status": word,
            "task_info": {"external_task_id": task.external_id} if task.external_id else {},
            "created_at": int(task.created_at * 1000),
            "updated_at": now_ms,
        }
        if state == "failed":
            data["task_status_msg"] = task.lifecycle.error_message
        elif state == "output_moderation":
            data["task_status_msg"] = "Failure to pass the risk control system"
        if word == "succeed":
            if "url" not in task.result:
                task.result["url"] = self.publish(tiny_mp4(), "video/mp4")
            data["task_result"] = {
                "videos": [{"id": f"v-{task.id}", "url": task.result["url"],
                            "duration": self.duration}]
            }  # fmt: skip
            data["final_unit_deduction"] = self.units
        return data

    def _find(self, family: str, ident: str) -> FakeTask | None:
        task = self.tasks.get(ident) or self.tasks.get(self.by_external.get(ident, ""))
        if task is None or task.body.get("family") != family:
            return None
        return task

    async def _query(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "poll")
        if denied is not None:
            return denied
        task = self._find(request.match_info["family"], request.match_info["id"])
        if task is None or task.state == "gone":
            return reply(1203, "task not found", status=404)
        # The call succeeded even when the task failed: message stays SUCCEED (PROVIDERS §6).
        return reply(0, "SUCCEED", self._data(task, self.step(task)))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "list")
        if denied is not None:
            return denied
        family = request.match_info["family"]
        size = int(request.query.get("pageSize", "30"))
        if not 1 <= size <= 500:
            return reply(1201, "pageSize must be within [1, 500]", status=400)
        found = [t for t in self.tasks.values() if t.body.get("family") == family]
        found.sort(key=lambda t: t.created_at, reverse=True)
        return reply(0, "SUCCEED", [self._data(t, t.state) for t in found[:size]])
