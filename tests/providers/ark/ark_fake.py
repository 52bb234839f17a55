"""A fake Volcengine Ark / BytePlus ModelArk upstream (PROVIDERS.md §3, §4), on the shared fakes.

Written from the protocol, not from the adapter: its own table of what each model accepts.

- Auth: `Authorization: Bearer <key>`, else 401 `AuthenticationError`.
- `POST /api/v3/contents/generations/tasks` (JSON only): `model` known to this host (else 404
  `InvalidEndpointOrModel.NotFound`; `closed_models` answer `ModelNotOpen`); `content[]` items
  text / image_url / video_url / audio_url with the documented roles; modes mutually exclusive
  (frames or references); a last frame needs a first; reference mode only on 2.0, ≤ 9 images,
  ≤ 3 videos, ≤ 3 audios, never audio alone; video never as base64; `resolution`, `ratio`,
  `duration` per model; `seed`, `service_tier`, `camera_fixed` refused by 2.0 (400
  `InvalidParameter`, §11.5); `camera_fixed` refused with reference images; no undocumented
  field. Answers `{"id": "cgt-…"}`.
- `GET …/tasks/{id}`: one lifecycle step per poll, in Ark's words (queued, running, succeeded,
  failed, cancelled, expired); `output_moderation` fails with
  `OutputVideoSensitiveContentDetected`; `gone` is a 404 `ResourceNotFound`. A succeeded task
  carries a real MP4 at an expiring URL, the chosen `ratio`, its `duration` and token usage
  (W × H × fps × seconds / 1024, as Ark bills).
- `GET …/tasks` (page_num, page_size, filter.model, filter.status, filter.task_ids), newest first.
- `DELETE …/tasks/{id}`: queued → cancelled; running → 400; finished → record deleted.
- `POST /api/v3/images/generations` (Seedream, synchronous): size preset or WxH in range, ≤ 10
  input images, `sequential_image_generation` auto + `max_images`; images at expiring URLs.
- `POST /api/v3/chat/completions`: a minimal OpenAI-style reply (Ark relays chat too).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from support.fakes import FakeTask, FakeUpstream, tiny_mp4, tiny_png

RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9", "adaptive")
# Output sizes per resolution and ratio (Seedance's table); adaptive renders as 16:9 here.
SIZES = {
    "480p": {"16:9": (864, 480), "4:3": (736, 544), "1:1": (640, 640), "3:4": (544, 736),
             "9:16": (480, 864), "21:9": (960, 416)},
    "720p": {"16:9": (1248, 704), "4:3": (1120, 832), "1:1": (960, 960), "3:4": (832, 1120),
             "9:16": (704, 1248), "21:9": (1504, 640)},
    "1080p": {"16:9": (1920, 1088), "4:3": (1664, 1248), "1:1": (1440, 1440),
              "3:4": (1248, 1664), "9:16": (1088, 1920), "21:9": (2176, 928)},
}  # fmt: skip
FPS = 24
VIDEO_FIELDS = {
    "model", "content", "resolution", "ratio", "duration", "frames", "seed", "camera_fixed",
    "watermark", "generate_audio", "return_last_frame", "draft", "service_tier",
    "execution_expires_after", "priority", "safety_identifier", "tools", "callback_url",
}  # fmt: skip
IMAGE_FIELDS = {
    "model", "prompt", "image", "size", "seed", "sequential_image_generation",
    "sequential_image_generation_options", "response_format", "watermark", "stream",
    "guidance_scale", "optimize_prompt_options", "output_format",
}  # fmt: skip
_DATA_URI = re.compile(r"^data:(image|audio)/([a-z0-9.+-]+);base64,(.+)$", re.S)
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")


@dataclass(frozen=True)
class VideoModel:
    version: str  # "2.0" | "1.5"
    resolutions: tuple[str, ...]
    durations: tuple[int, int]


def _v2(*resolutions: str) -> VideoModel:
    return VideoModel("2.0", resolutions, (4, 15))


ARK_VIDEO = {
    "doubao-seedance-2-0-260128": _v2("480p", "720p", "1080p", "4k"),
    "doubao-seedance-2-0-fast-260128": _v2("480p", "720p"),
    "doubao-seedance-1-5-pro-251215": VideoModel("1.5", ("480p", "720p", "1080p"), (4, 12)),
}
BYTEPLUS_VIDEO = {
    "dreamina-seedance-2-0-260128": _v2("480p", "720p", "1080p"),
    "dreamina-seedance-2-0-fast-260128": _v2("480p", "720p"),
    "seedance-1-5-pro-251215": VideoModel("1.5", ("480p", "720p", "1080p"), (4, 12)),
}
ARK_IMAGE = ("doubao-seedream-4-0-250828",)
BYTEPLUS_IMAGE = ("seedream-4-0-250828",)
CHAT = ("doubao-1-5-pro-32k-250115",)


def error(status: int, code: str, message: str, param: str = "") -> web.Response:
    body = {"error": {"code": code, "message": message, "param": param, "type": "BadRequest"}}
    return web.json_response(body, status=status)


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, param: str = "") -> None:
        super().__init__(message)
        self.reply = error(status, code, message, param)


def _bad(message: str, param: str = "") -> Refused:
    return Refused(400, "InvalidParameter", message, param)


def _check_url(kind: str, url: Any) -> None:
    if not isinstance(url, str) or not url:
        raise _bad(f"{kind}.url is required", f"content.{kind}")
    if url.startswith(("http://", "https://", "asset://")):
        return
    match = _DATA_URI.match(url)
    if kind == "video_url" or match is None or match[1] != kind.removesuffix("_url"):
        raise _bad(f"{kind}.url must be a URL{'' if kind == 'video_url' else ' or base64'}")
    if match[2] != match[2].lower():
        raise _bad("the format in a data URI must be lower case", f"content.{kind}")
    try:
        base64.b64decode(match[3], validate=True)
    except (binascii.Error, ValueError):
        raise _bad("invalid base64 data", f"content.{kind}") from None


def validate_video(body: Any, models: dict[str, VideoModel]) -> VideoModel:
    """Refuse what Ark refuses; returns the model's spec. Raises Refused."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    unknown = set(body) - VIDEO_FIELDS
    if unknown:
        raise _bad(f"unknown parameter: {sorted(unknown)[0]}", sorted(unknown)[0])
    spec = models.get(str(body.get("model")))
    if spec is None:
        raise Refused(404, "InvalidEndpointOrModel.NotFound",
                      f"The model or endpoint {body.get('model')} does not exist or you do not "
                      "have access to it.")  # fmt: skip
    content = body.get("content")
    if not isinstance(content, list) or not content:
        raise Refused(400, "MissingParameter", "content is required", "content")
    roles: dict[str, list[str | None]] = {"text": [], "image_url": [], "video_url": [],
                                          "audio_url": []}  # fmt: skip
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind not in roles:
            raise _bad(f"unknown content type {kind!r}", "content.type")
        if kind == "text":
            if not isinstance(item.get("text"), str):
                raise _bad("text must be a string", "content.text")
        else:
            _check_url(kind, (item.get(kind) or {}).get("url"))
        roles[kind].append(item.get("role"))
    if len(roles["text"]) > 1:
        raise _bad("at most one text item", "content")
    images, videos, audios = roles["image_url"], roles["video_url"], roles["audio_url"]
    if any(r not in (None, "first_frame", "last_frame", "reference_image") for r in images):
        raise _bad("invalid image role", "content.role")
    if any(r != "reference_video" for r in videos) or any(r != "reference_audio" for r in audios):
        raise _bad("video and audio items need their reference role", "content.role")
    reference = "reference_image" in images or bool(videos) or bool(audios)
    if reference:
        if any(r != "reference_image" for r in images):
            raise _bad("reference mode cannot be mixed with first/last frames", "content.role")
        if spec.version != "2.0":
            raise _bad(f"{body['model']} does not support reference inputs", "content.role")
        if len(images) > 9 or len(videos) > 3 or len(audios) > 3:
            raise _bad("too many reference inputs", "content")
        if not images and not videos:
            raise _bad("reference audio cannot be the only reference", "content")
    else:
        if len(images) > 2 or images.count("first_frame") > 1 or images.count("last_frame") > 1:
            raise _bad("at most a first and a last frame", "content")
        if "last_frame" in images and "first_frame" not in images:
            raise _bad("last_frame requires first_frame", "content.role")
    if not roles["text"] and not images:
        raise Refused(400, "MissingParameter", "a text prompt or an image is required", "content")
    _check_video_params(body, spec, reference)
    return spec


def _check_video_params(body: dict[str, Any], spec: VideoModel, reference: bool) -> None:
    model = body["model"]
    if "resolution" in body and body["resolution"] not in spec.resolutions:
        raise _bad(f"resolution {body['resolution']} is not supported by {model}", "resolution")
    if "ratio" in body and body["ratio"] not in RATIOS:
        raise _bad(f"ratio {body['ratio']} is not supported", "ratio")
    if "duration" in body:
        d = body["duration"]
        low, high = spec.durations
        if not isinstance(d, int) or isinstance(d, bool):
            raise _bad("duration must be an integer", "duration")
        if not (low <= d <= high or (d == -1 and spec.version == "2.0")):
            raise _bad(f"duration must be within [{low}, {high}]", "duration")
    if spec.version == "2.0":
        for name in ("seed", "service_tier", "camera_fixed", "frames", "draft"):
            if name in body:
                raise _bad(f"{name} is not supported by {model}", name)
    if reference and "camera_fixed" in body:
        raise _bad("camera_fixed is not supported with reference images", "camera_fixed")
    if "seed" in body and (
        not isinstance(body["seed"], int) or not -1 <= body["seed"] <= 2**32 - 1
    ):
        raise _bad("seed must be an integer in [-1, 4294967295]", "seed")
    for name in ("watermark", "camera_fixed", "generate_audio", "return_last_frame"):
        if name in body and not isinstance(body[name], bool):
            raise _bad(f"{name} must be a boolean", name)


def validate_image(body: Any, models: tuple[str, ...]) -> int:
    """Refuse what Seedream 4.0 refuses; returns how many images the request may make."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    unknown = set(body) - IMAGE_FIELDS
    if unknown:
        raise _bad(f"unknown parameter: {sorted(unknown)[0]}", sorted(unknown)[0])
    if body.get("model") not in models:
        raise Refused(404, "InvalidEndpointOrModel.NotFound", "model not found", "model")
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise Refused(400, "MissingParameter", "prompt is required", "prompt")
    if "seed" in body:
        raise _bad("seed is not supported by this model", "seed")
    size = body.get("size", "2048x2048")
    match = _WXH.match(str(size))
    if size not in ("1K", "2K", "4K") and not (
        match and 921_600 <= int(match[1]) * int(match[2]) <= 16_777_216
    ):
        raise _bad(f"size {size} is not supported", "size")
    image = body.get("image")
    images = [] if image is None else [image] if isinstance(image, str) else image
    if not isinstance(images, list) or len(images) > 10:
        raise _bad("image must be a URL or a list of at most 10", "image")
    for url in images:
        _check_url("image_url", url)
    mode = body.get("sequential_image_generation", "disabled")
    if mode not in ("auto", "disabled"):
        raise _bad("sequential_image_generation must be auto or disabled")
    most = 1
    if mode == "auto":
        most = int((body.get("sequential_image_generation_options") or {}).get("max_images", 15))
        if not 1 <= most <= 15 or len(images) + most > 15:
            raise _bad("input + output images must not exceed 15", "max_images")
    if body.get("response_format", "url") not in ("url", "b64_json"):
        raise _bad("response_format must be url or b64_json", "response_format")
    return most


class ArkFake(FakeUpstream):
    api_key = "ark-fake-key-0123456789abcdef"

    def __init__(self, *, byteplus: bool = False) -> None:
        super().__init__()
        self.video_models = BYTEPLUS_VIDEO if byteplus else ARK_VIDEO
        self.image_models = BYTEPLUS_IMAGE if byteplus else ARK_IMAGE
        self.closed_models: set[str] = set()  # answer ModelNotOpen
        self.report_duration: int | None = None  # what a finished task says it lasted
        self.images_made: int | None = None  # fewer images than asked (auto mode decides)
        self.image_moderation = False
        self.lose_replies = 0  # creates that make the task, then answer 500 (a lost reply)
        self.chat_calls = 0

    def check_auth(self, request: web.Request, body: bytes) -> web.StreamResponse | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return web.json_response(
            {"error": {"code": "AuthenticationError", "type": "Unauthorized", "param": "",
                       "message": "The API key or AK/SK in the request is missing or invalid. "
                                  f"Request id: {secrets.token_hex(8)}"}},
            status=401,
        )  # fmt: skip

    def add_routes(self, router: web.UrlDispatcher) -> None:
        tasks = "/api/v3/contents/generations/tasks"
        router.add_post(tasks, self._create)
        router.add_get(tasks, self._list)
        router.add_get(tasks + "/{id}", self._query)
        router.add_delete(tasks + "/{id}", self._delete)
        router.add_post("/api/v3/images/generations", self._images)
        router.add_post("/api/v3/chat/completions", self._chat)

    # -- video tasks ----------------------------------------------------------------------------

    async def _json(self, request: web.Request, op: str) -> tuple[Any, web.StreamResponse | None]:
        body, denied = await self.guard(request, op)
        if denied is not None:
            return None, denied
        if request.content_type != "application/json":
            return None, _bad("Content-Type must be application/json").reply
        try:
            return json.loads(body), None
        except ValueError:
            return None, _bad("the body is not valid JSON").reply

    async def _create(self, request: web.Request) -> web.StreamResponse:
        payload, denied = await self._json(request, "create")
        if denied is not None:
            return denied
        try:
            validate_video(payload, self.video_models)
        except Refused as exc:
            return exc.reply
        if payload["model"] in self.closed_models:
            return error(404, "ModelNotOpen", f"Your account has not activated {payload['model']}")
        task = self.new_task(payload, prefix="cgt")
        task.result["seed"] = secrets.randbelow(2**31)
        await self.created()
        if self.lose_replies > 0:
            self.lose_replies -= 1
            return error(500, "InternalServiceError", "The service encountered an internal error.")
        return web.json_response({"id": task.id})

    def render(self, task: FakeTask, state: str) -> dict[str, Any]:
        body = task.body
        word = {"queued": "queued", "running": "running", "succeeded": "succeeded",
                "cancelled": "cancelled", "expired": "expired",
                "mystery": "paused_for_review"}.get(state, "failed")  # fmt: skip
        if task.result.get("cancelled"):
            word = "cancelled"
        resolution = body.get("resolution", "720p")
        ratio = body.get("ratio", "adaptive")
        chosen = "16:9" if ratio == "adaptive" else ratio
        duration = body.get("duration", 5)
        if duration == -1:
            duration = 8  # the model chose
        data: dict[str, Any] = {
            "id": task.id,
            "model": body["model"],
            "status": word,
            "error": None,
            "created_at": int(task.created_at),
            "updated_at": int(time.time()),
            "seed": task.result.get("seed", 0),
            "resolution": resolution,
            "ratio": chosen,
            "duration": duration,
            "framespersecond": FPS,
            "generate_audio": body.get("generate_audio", True),
            "draft": False,
            "service_tier": "default",
            "execution_expires_after": 172800,
        }
        if word == "succeeded":
            seconds = self.report_duration or duration
            data["duration"] = seconds
            if "url" not in task.result:
                task.result["url"] = self.publish(tiny_mp4(), "video/mp4")
            data["content"] = {"video_url": task.result["url"]}
            data["usage"] = {"completion_tokens": tokens_for(resolution, chosen, seconds),
                             "total_tokens": tokens_for(resolution, chosen, seconds)}  # fmt: skip
        elif word == "failed":
            code, message = task.lifecycle.error_code, task.lifecycle.error_message
            if state == "output_moderation":
                code = "OutputVideoSensitiveContentDetected"
                message = (
                    "The request failed because the output video may contain sensitive information."
                )
            data["error"] = {"code": code, "message": message}
        return data

    def _find(self, request: web.Request) -> FakeTask | None:
        task = self.tasks.get(request.match_info["id"])
        return None if task is None or task.state == "gone" else task

    async def _query(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "poll")
        if denied is not None:
            return denied
        task = self._find(request)
        if task is None:
            return error(404, "ResourceNotFound", "The specified task is not found.")
        state = task.state if task.result.get("cancelled") else self.step(task)
        return web.json_response(self.render(task, state))

    async def _list(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "list")
        if denied is not None:
            return denied
        q = request.query
        items = [self.render(t, t.state) for t in self.tasks.values() if t.state != "gone"]
        if model := q.get("filter.model"):
            items = [i for i in items if i["model"] == model]
        if status := q.get("filter.status"):
            items = [i for i in items if i["status"] == status]
        if ids := q.getall("filter.task_ids", []):
            items = [i for i in items if i["id"] in ids]
        items.sort(key=lambda i: i["created_at"], reverse=True)
        page, size = int(q.get("page_num", "1")), int(q.get("page_size", "10"))
        if not 1 <= size <= 500:
            return _bad("page_size must be within [1, 500]", "page_size").reply
        return web.json_response(
            {"total": len(items), "items": items[(page - 1) * size : page * size]}
        )

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "cancel")
        if denied is not None:
            return denied
        task = self._find(request)
        if task is None:
            return error(404, "ResourceNotFound", "The specified task is not found.")
        state = task.state
        if state == "queued" and not task.result.get("cancelled"):
            task.result["cancelled"] = True
        elif state == "running":
            return _bad("A running task cannot be cancelled.")
        else:
            del self.tasks[task.id]  # a finished (or cancelled) task's record is deleted
        return web.json_response({})

    # -- images and chat ------------------------------------------------------------------------

    async def _images(self, request: web.Request) -> web.StreamResponse:
        payload, denied = await self._json(request, "images")
        if denied is not None:
            return denied
        try:
            most = validate_image(payload, self.image_models)
        except Refused as exc:
            return exc.reply
        self.creates += 1
        made = min(most, self.images_made or most)
        if self.image_moderation:
            data: list[dict[str, Any]] = [{"error": {
                "code": "OutputImageSensitiveContentDetected",
                "message": "The generated image may contain sensitive information."}}]  # fmt: skip
            made = 0
        elif payload.get("response_format") == "b64_json":
            data = [{"b64_json": base64.b64encode(tiny_png(seed=i)).decode(), "size": "64x48"}
                    for i in range(made)]  # fmt: skip
        else:
            data = [{"url": self.publish(tiny_png(seed=i), "image/png"), "size": "64x48"}
                    for i in range(made)]  # fmt: skip
        usage = {"generated_images": made, "output_tokens": 4096 * made,
                 "total_tokens": 4096 * made}  # fmt: skip
        return web.json_response(
            {"model": payload["model"], "created": int(time.time()), "data": data, "usage": usage}
        )

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        payload, denied = await self._json(request, "chat")
        if denied is not None:
            return denied
        if payload.get("model") not in CHAT:
            return error(404, "InvalidEndpointOrModel.NotFound", "model not found", "model")
        self.chat_calls += 1
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        reply = {"id": "chat-" + secrets.token_hex(6), "object": "chat.completion",
                 "created": int(time.time()), "model": payload["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": "你好"}}],
                 "usage": usage}  # fmt: skip
        if not payload.get("stream"):
            return web.json_response(reply)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {**reply, "object": "chat.completion.chunk", "usage": None,
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "你好"},
                              "finish_reason": "stop"}]}  # fmt: skip
        await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())
        last = {**chunk, "choices": [], "usage": usage}
        await resp.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
        return resp


def tokens_for(resolution: str, ratio: str, seconds: int | float) -> int:
    width, height = SIZES.get(resolution, SIZES["720p"]).get(ratio, (1248, 704))
    return int(width * height * FPS * seconds / 1024)
