"""A fake OpenAI-style media upstream (`/v1/videos`, `/v1/images/...`), on the shared framework.

It checks what OpenAI checks: `Authorization: Bearer <key>`; `/videos` bodies are multipart with
`prompt`, `model` among the video models, `seconds` "4" | "8" | "12", `size` among the four
sizes, `input_reference` an image file; `/images/edits` is multipart with `image` or `image[]`;
`/images/generations` is JSON. Videos move one status per poll (queued → in_progress →
completed, or failed), are listed newest first by `GET /videos`, and their content
(`variant=video|thumbnail`) is a real MP4 / JPEG until `expire_files()`.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from aiohttp import web

from support.fakes import FakeTask, FakeUpstream, tiny_jpeg, tiny_mp4, tiny_png

VIDEO_MODELS = ("sora-2", "sora-2-pro")
SECONDS = ("4", "8", "12")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
IMAGE_MODELS = ("gpt-image-1", "dall-e-3")


def _error(status: int, message: str, code: str, param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}  # fmt: skip
    return web.json_response(body, status=status)


class OpenAIMediaFake(FakeUpstream):
    api_key = "sk-openai-fake-0123456789"

    def __init__(self) -> None:
        super().__init__()
        self.report_seconds: str | None = None  # what a finished video says it lasted

    def check_auth(self, request: web.Request, body: bytes) -> web.StreamResponse | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return _error(401, "Incorrect API key provided", "invalid_api_key")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/videos", self._create)
        router.add_get("/v1/videos", self._list)
        router.add_get("/v1/videos/{id}", self._retrieve)
        router.add_get("/v1/videos/{id}/content", self._content)
        router.add_post("/v1/images/generations", self._generate)
        router.add_post("/v1/images/edits", self._edit)

    # -- videos ---------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        if not request.content_type.startswith("multipart/"):
            await self.guard(request, "create")
            return _error(400, "Expected multipart/form-data", "invalid_request")
        form = await request.post()
        _, denied = await self.guard(request, "create")
        if denied is not None:
            return denied
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if not fields.get("prompt"):
            return _error(400, "Missing required parameter: 'prompt'.", "missing", "prompt")
        if fields.get("model", "sora-2") not in VIDEO_MODELS:
            return _error(400, f"Invalid model {fields.get('model')!r}", "invalid_value", "model")
        if fields.get("seconds", "4") not in SECONDS:
            return _error(400, "Invalid 'seconds'", "invalid_value", "seconds")
        if fields.get("size", "720x1280") not in SIZES:
            return _error(400, "Invalid 'size'", "invalid_value", "size")
        ref = form.get("input_reference")
        if ref is not None and (
            isinstance(ref, str) or not (ref.content_type or "").startswith("image/")
        ):
            return _error(400, "input_reference must be an image file", "invalid_value",
                          "input_reference")  # fmt: skip
        fields["input_reference"] = "file" if ref is not None else ""
        task = self.new_task(fields, prefix="video")
        await self.created()
        return web.json_response(self._video(task, "queued"))

    def _video(self, task: FakeTask, state: str) -> dict[str, Any]:
        status = {"queued": "queued", "running": "in_progress", "succeeded": "completed"}.get(
            state, "failed"
        )
        video: dict[str, Any] = {
            "id": task.id,
            "object": "video",
            "model": task.body.get("model", "sora-2"),
            "status": status,
            "progress": {"queued": 0, "running": 50}.get(state, 100),
            "created_at": int(task.created_at),
            "prompt": task.body.get("prompt"),
            "seconds": task.body.get("seconds", "4"),
            "size": task.body.get("size", "720x1280"),
        }
        if status == "completed":
            video["completed_at"] = int(time.time())
            video["seconds"] = self.report_seconds or video["seconds"]
        if state == "failed":
            video["error"] = {"code": task.lifecycle.error_code,
                              "message": task.lifecycle.error_message}  # fmt: skip
        if state == "output_moderation":
            video["error"] = {"code": "moderation_blocked", "message": "output was blocked"}
        return video

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "poll")
        if denied is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.state == "gone":
            return _error(404, "Video not found", "not_found")
        return web.json_response(
            self._video(task, self.step(task)), headers={"openai-poll-after-ms": "50"}
        )

    async def _list(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "list")
        if denied is not None:
            return denied
        newest = sorted(self.tasks.values(), key=lambda t: t.created_at, reverse=True)
        limit = int(request.query.get("limit", "20"))
        data = [self._video(t, t.state) for t in newest[:limit]]
        return web.json_response({"object": "list", "data": data, "has_more": False})

    async def _content(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "content")
        if denied is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.state != "succeeded" or not task.finished:
            return _error(404, "Video content not found", "not_found")
        if self._expired:
            return _error(404, "Video content has expired", "expired")
        variant = request.query.get("variant", "video")
        if variant == "video":
            return web.Response(body=tiny_mp4(), content_type="video/mp4")
        if variant == "thumbnail":
            return web.Response(body=tiny_jpeg(), content_type="image/jpeg")
        return _error(400, "Invalid variant", "invalid_value", "variant")

    # -- images ---------------------------------------------------------------------------------

    def _images(self, fields: dict[str, Any]) -> web.StreamResponse:
        if not fields.get("prompt"):
            return _error(400, "Missing required parameter: 'prompt'.", "missing", "prompt")
        if fields.get("model", "gpt-image-1") not in IMAGE_MODELS:
            return _error(400, "Invalid model", "invalid_value", "model")
        n = int(fields.get("n") or 1)
        if not 1 <= n <= 10:
            return _error(400, "n must be between 1 and 10", "invalid_value", "n")
        self.creates += 1
        if fields.get("response_format") == "url":
            data = [{"url": self.publish(tiny_png(seed=i), "image/png")} for i in range(n)]
        else:
            data = [{"b64_json": base64.b64encode(tiny_png(seed=i)).decode()} for i in range(n)]
        usage = {"input_tokens": 10, "output_tokens": 100 * n, "total_tokens": 10 + 100 * n}
        return web.json_response({"created": int(time.time()), "data": data, "usage": usage})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "images")
        if denied is not None:
            return denied
        if request.content_type != "application/json":
            return _error(400, "Expected JSON", "invalid_request")
        return self._images(await request.json())

    async def _edit(self, request: web.Request) -> web.StreamResponse:
        if not request.content_type.startswith("multipart/"):
            await self.guard(request, "edits")
            return _error(400, "Expected multipart/form-data", "invalid_request")
        form = await request.post()
        _, denied = await self.guard(request, "edits")
        if denied is not None:
            return denied
        images = [
            v for k, v in form.items() if k in ("image", "image[]") and not isinstance(v, str)
        ]
        if not images:
            return _error(400, "Missing required parameter: 'image'.", "missing", "image")
        return self._images({k: v for k, v in form.items() if isinstance(v, str)})
