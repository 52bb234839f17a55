"""A fake Aliyun DashScope (`/api/v1`), on the shared fake framework (PROVIDERS.md §2).

It checks what DashScope checks: `Authorization: Bearer <key>` (else 401 `InvalidApiKey`), the
`X-DashScope-Async: enable` header on every create (else 403 `AccessDenied`, "does not support
synchronous calls"), the endpoint of each model (kf2v models only on `image2video`, qwen-image
only on `text2image`), the documented `input` / `parameters` fields of each model and their
values: Wan 2.6 takes `size` for t2v/r2v and `resolution` for i2v, never both, and no 480P;
kf2v takes two frames and no duration but 5; HappyHorse takes `media` of the right types,
720P/1080P and the five base ratios; qwen-image makes one image. Images are `data:` base64 URIs
(decoded) or http(s) URLs; it never fetches our URLs. A prompt containing FORBIDDEN is refused
by input moderation (400 `DataInspectionFailed`).

Tasks move one state per `GET /tasks/{id}` (PENDING → RUNNING → SUCCEEDED, or FAILED with or
without a code, output moderation, SUSPENDED, CANCELED, UNKNOWN); a finished video or image is a
real file at a URL that expires. `GET /tasks` lists tasks by model and time window (Beijing wall
clock) with their exact `gmt_create`; `POST /tasks/{id}/cancel` cancels a PENDING task only.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from support.fakes import FakeTask, FakeUpstream, Lifecycle, tiny_mp4, tiny_png

API = "/api/v1"
SIZES = ("1280*720", "720*1280", "960*960", "1088*832", "832*1088",
         "1920*1080", "1080*1920", "1440*1440", "1632*1248", "1248*1632")  # fmt: skip
RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4")
IMAGE_SIZES = ("1664*928", "1472*1140", "1328*1328", "1140*1472", "928*1664")
BEIJING = timedelta(hours=8)
_COMMON = {"watermark", "seed"}

# model -> (endpoint, protocol, input fields, parameter fields)
MODELS: dict[str, tuple[str, str, set[str], set[str]]] = {
    "wan2.6-t2v": ("video", "t2v", {"prompt", "negative_prompt", "audio_url"},
                   {"size", "duration", "prompt_extend", "shot_type", "audio"} | _COMMON),
    "wan2.6-i2v": ("video", "i2v", {"prompt", "negative_prompt", "img_url", "audio_url"},
                   {"resolution", "duration", "prompt_extend", "shot_type", "audio"} | _COMMON),
    "wan2.6-r2v": ("video", "r2v", {"prompt", "negative_prompt", "reference_urls"},
                   {"size", "duration", "shot_type", "audio"} | _COMMON),
    "wan2.2-kf2v-flash": ("kf2v", "kf2v", {"prompt", "negative_prompt", "first_frame_url",
                          "last_frame_url", "template"},
                          {"resolution", "duration", "prompt_extend"} | _COMMON),
    "wan2.1-kf2v-plus": ("kf2v", "kf2v", {"prompt", "negative_prompt", "first_frame_url",
                         "last_frame_url", "template"},
                         {"resolution", "duration", "prompt_extend"} | _COMMON),
    "happyhorse-1.0-t2v": ("video", "hh-t2v", {"prompt"}, {"resolution", "ratio", "duration"}
                           | _COMMON),
    "happyhorse-1.0-i2v": ("video", "hh-i2v", {"prompt", "media"}, {"resolution", "duration"}
                           | _COMMON),
    "happyhorse-1.0-r2v": ("video", "hh-r2v", {"prompt", "media"},
                           {"resolution", "ratio", "duration"} | _COMMON),
    "qwen-image": ("image", "image", {"prompt"},
                   {"negative_prompt", "size", "n", "prompt_extend"} | _COMMON),
}  # fmt: skip
Fields = dict[str, Any]
_TIER_SIZE = {"480P": "832*480", "720P": "1280*720", "1080P": "1920*1080"}


def _error(status: int, code: str, message: str) -> web.Response:
    body = {"request_id": secrets.token_hex(8), "code": code, "message": message}
    return web.json_response(body, status=status)


def _bad(message: str) -> web.Response:
    return _error(400, "InvalidParameter", message)


def _wall(ms: int) -> str:
    return (datetime.fromtimestamp(ms / 1000, tz=UTC) + BEIJING).strftime("%Y-%m-%d %H:%M:%S.%f")[
        :-3
    ]


def _image_value(value: Any) -> str | None:
    """Why an image value is refused, or None: a decodable `data:image/...;base64,` or a URL."""
    if not isinstance(value, str):
        return "image must be a string"
    if value.startswith("data:"):
        head, sep, payload = value.partition(",")
        if not sep or not head.startswith("data:image/") or not head.endswith(";base64"):
            return "data uri must be data:image/<type>;base64,<data>"
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return "data uri is not valid base64"
        return None
    return None if value.startswith(("http://", "https://")) else "url must be http(s)"


class DashScopeFake(FakeUpstream):
    api_key = "sk-dashscope-fake-0123456789abcdef"

    def __init__(self) -> None:
        super().__init__()
        self.usage_style = "number"  # "number" | "string" | "duration" | "none"
        self.report_seconds: float | None = None  # what a finished video says it lasted
        self.answer_after_create: tuple[int, dict[str, Any]] | None = None  # made, then this

    def check_auth(self, request: web.Request, body: bytes) -> web.StreamResponse | None:
        if request.headers.get("Authorization") == f"Bearer {self.api_key}":
            return None
        return _error(401, "InvalidApiKey", "Invalid API-key provided.")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post(f"{API}/services/aigc/video-generation/video-synthesis", self._video)
        router.add_post(f"{API}/services/aigc/image2video/video-synthesis", self._kf2v)
        router.add_post(f"{API}/services/aigc/text2image/image-synthesis", self._image)
        router.add_get(f"{API}/tasks", self._list)
        router.add_get(f"{API}/tasks/{{id}}", self._task)
        router.add_post(f"{API}/tasks/{{id}}/cancel", self._cancel)

    # -- create ---------------------------------------------------------------------------------

    async def _video(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, "video")

    async def _kf2v(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, "kf2v")

    async def _image(self, request: web.Request) -> web.StreamResponse:
        return await self._create(request, "image")

    async def _create(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        raw, denied = await self.guard(request, "create")
        if denied is not None:
            return denied
        if request.headers.get("X-DashScope-Async") != "enable":
            return _error(
                403, "AccessDenied", "current user api does not support synchronous calls"
            )
        try:
            import json

            body = json.loads(raw)
        except ValueError:
            return _bad("request body is not json")
        refusal = self._validate(body, endpoint)
        if refusal is not None:
            return refusal
        if "FORBIDDEN" in str(body["input"].get("prompt", "")):
            return _error(
                400, "DataInspectionFailed", "Input data may contain inappropriate content."
            )
        task = self.new_task(body, prefix="ds")
        task.result["endpoint"] = endpoint
        await self.created()
        if self.answer_after_create is not None:
            status, answer = self.answer_after_create
            return web.json_response(answer, status=status)
        return web.json_response(
            {"request_id": secrets.token_hex(8),
             "output": {"task_id": task.id, "task_status": "PENDING"}}
        )  # fmt: skip

    def _validate(self, body: Any, endpoint: str) -> web.Response | None:
        if not isinstance(body, dict) or not body.get("model"):
            return _error(400, "BadRequest.EmptyModel", "Required parameter(s) missing: model")
        model = body["model"]
        if model not in MODELS:
            return _bad("Model not exist.")
        where, protocol, input_fields, parameter_fields = MODELS[model]
        if where != endpoint:
            return _bad("url error, please check url!")
        inputs, params = body.get("input"), body.get("parameters", {})
        if not isinstance(inputs, dict) or not inputs:
            return _error(400, "BadRequest.EmptyInput", "Required input parameter missing")
        if not isinstance(params, dict):
            return _error(400, "BadRequest.EmptyParameters", "parameters must be an object")
        extra = (set(inputs) - input_fields) | (set(params) - parameter_fields)
        if extra:
            return _bad(f"Unsupported field(s): {', '.join(sorted(extra))}")
        if not str(inputs.get("prompt") or "").strip():
            return _bad("input.prompt is required")
        if "duration" in params and not isinstance(params["duration"], int):
            return _bad("duration must be an integer")
        seed = params.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= 2147483647:
            return _bad("seed must be an integer in [0, 2147483647]")
        if any(not isinstance(params.get(f, True), bool) for f in ("watermark", "prompt_extend")):
            return _bad("watermark and prompt_extend are booleans")
        check = getattr(self, f"_check_{protocol.replace('-', '_')}")
        result: web.Response | None = check(inputs, params, model)
        return result

    @staticmethod
    def _check_t2v(
        inputs: dict[str, Any], params: dict[str, Any], model: str
    ) -> web.Response | None:
        if "size" in params and params["size"] not in SIZES:
            return _bad(f"The size is not match the allowed size {list(SIZES)}")
        if params.get("duration", 5) not in (5, 10, 15):
            return _bad("duration must be one of 5, 10, 15")
        return None

    @staticmethod
    def _check_i2v(
        inputs: dict[str, Any], params: dict[str, Any], model: str
    ) -> web.Response | None:
        why = _image_value(inputs.get("img_url"))
        if why:
            return _bad(f"img_url: {why}")
        if params.get("resolution", "1080P") not in ("720P", "1080P"):
            return _bad("resolution must be 720P or 1080P")
        if params.get("duration", 5) not in (5, 10, 15):
            return _bad("duration must be one of 5, 10, 15")
        return None

    @staticmethod
    def _check_r2v(
        inputs: dict[str, Any], params: dict[str, Any], model: str
    ) -> web.Response | None:
        refs = inputs.get("reference_urls")
        if not isinstance(refs, list) or not 1 <= len(refs) <= 5:
            return _bad("reference_urls must hold 1 to 5 urls")
        for ref in refs:
            why = _image_value(ref)
            if why:
                return _bad(f"reference_urls: {why}")
        if "size" in params and params["size"] not in SIZES:
            return _bad(f"The size is not match the allowed size {list(SIZES)}")
        if not 2 <= params.get("duration", 5) <= 10:
            return _bad("duration must be between 2 and 10")
        return None

    @staticmethod
    def _check_kf2v(
        inputs: dict[str, Any], params: dict[str, Any], model: str
    ) -> web.Response | None:
        for name in ("first_frame_url", "last_frame_url"):
            why = _image_value(inputs.get(name))
            if why:
                return _bad(f"{name}: {why}")
        allowed = ("720P",) if "plus" in model else ("480P", "720P", "1080P")
        if params.get("resolution", "720P") not in allowed:
            return _bad(f"resolution must be one of {', '.join(allowed)}")
        if params.get("duration", 5) != 5:
            return _bad("duration is fixed to 5")
        return None

    @staticmethod
    def _happyhorse(
        params: dict[str, Any], media: Any, types: set[str], count: range
    ) -> str | None:
        if params.get("resolution", "1080P") not in ("720P", "1080P"):
            return "resolution must be 720P or 1080P"
        if "ratio" in params and params["ratio"] not in RATIOS:
            return f"ratio must be one of {', '.join(RATIOS)}"
        if not 3 <= params.get("duration", 5) <= 15:
            return "duration must be between 3 and 15"
        items = media if isinstance(media, list) else [] if media is None else None
        if items is None or len(items) not in count:
            return "media has the wrong number of items"
        for item in items:
            if not isinstance(item, dict) or item.get("type") not in types:
                return f"media type must be one of {', '.join(sorted(types))}"
            why = _image_value(item.get("url"))
            if why:
                return f"media url: {why}"
        return None

    def _check_hh_t2v(self, inputs: dict[str, Any], params: dict[str, Any], model: str) -> Any:
        why = self._happyhorse(params, inputs.get("media"), set(), range(0, 1))
        return _bad(why) if why else None

    def _check_hh_i2v(self, inputs: dict[str, Any], params: dict[str, Any], model: str) -> Any:
        why = self._happyhorse(params, inputs.get("media"), {"first_frame"}, range(1, 2))
        return _bad(why) if why else None

    def _check_hh_r2v(self, inputs: dict[str, Any], params: dict[str, Any], model: str) -> Any:
        why = self._happyhorse(params, inputs.get("media"), {"reference_image"}, range(1, 10))
        return _bad(why) if why else None

    @staticmethod
    def _check_image(
        inputs: dict[str, Any], params: dict[str, Any], model: str
    ) -> web.Response | None:
        if params.get("size", "1328*1328") not in IMAGE_SIZES:
            return _bad(f"size must be one of {', '.join(IMAGE_SIZES)}")
        if params.get("n", 1) != 1:
            return _bad("n must be 1")
        return None

    # -- tasks ----------------------------------------------------------------------------------

    def _word(self, task: FakeTask, state: str) -> str:
        return {
            "queued": "PENDING",
            "running": "RUNNING",
            "suspended": "SUSPENDED",
            "succeeded": "SUCCEEDED",
            "canceled": "CANCELED",
            "gone": "UNKNOWN",
        }.get(state, "FAILED")

    def _usage(self, task: FakeTask) -> dict[str, Any]:
        params = task.body.get("parameters", {})
        seconds = self.report_seconds
        if seconds is None:
            seconds = 5 if task.result["endpoint"] == "kf2v" else params.get("duration", 5)
        size = params.get("size") or _TIER_SIZE[params.get("resolution", "1080P")]
        if self.usage_style == "none":
            return {}
        if self.usage_style == "string":
            return {"video_duration": str(seconds), "video_ratio": size, "video_count": 1}
        if self.usage_style == "duration":
            return {"duration": seconds, "video_count": 1}
        return {"video_duration": seconds, "video_ratio": size, "video_count": 1}

    def _render(self, task: FakeTask, state: str) -> dict[str, Any]:
        created_ms = int(task.created_at * 1000)
        output: dict[str, Any] = {
            "task_id": task.id,
            "task_status": self._word(task, state),
            "submit_time": _wall(created_ms),
        }
        if state == "gone":
            return {"request_id": secrets.token_hex(8), "output": output}
        output["orig_prompt"] = task.body["input"].get("prompt")
        reply: dict[str, Any] = {"request_id": secrets.token_hex(8), "output": output}
        if state in ("running", "succeeded", "failed", "output_moderation"):
            output["scheduled_time"] = _wall(created_ms + 100)
        if state == "failed" and task.lifecycle.error_code:
            output["code"] = task.lifecycle.error_code
            output["message"] = task.lifecycle.error_message
        if state == "output_moderation":
            output["code"] = task.lifecycle.error_code or "DataInspectionFailed"
            output["message"] = "Output data may contain inappropriate content."
        if state != "succeeded":
            return reply
        output["end_time"] = _wall(int(time.time() * 1000))
        if task.result["endpoint"] == "image":
            if "url" not in task.result:
                task.result["url"] = self.publish(tiny_png(seed=7), "image/png")
            prompt = output["orig_prompt"]
            output["results"] = [{"orig_prompt": prompt, "actual_prompt": prompt,
                                  "url": task.result["url"]}]  # fmt: skip
            output["task_metrics"] = {"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0}
            reply["usage"] = {"image_count": 1}
            return reply
        if "url" not in task.result:
            task.result["url"] = self.publish(tiny_mp4(), "video/mp4")
        output["video_url"] = task.result["url"]
        output["actual_prompt"] = output["orig_prompt"]
        reply["usage"] = self._usage(task)
        return reply

    async def _task(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "poll")
        if denied is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None:  # DashScope answers an unknown or expired id with UNKNOWN
            output = {"task_id": request.match_info["id"], "task_status": "UNKNOWN"}
            return web.json_response({"request_id": secrets.token_hex(8), "output": output})
        return web.json_response(self._render(task, self.step(task)))

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "cancel")
        if denied is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.state != "queued":
            return _error(400, "UnsupportedOperation", "Failed to cancel the task, please "
                          "confirm if the task is in PENDING status.")  # fmt: skip
        task.lifecycle = Lifecycle(("canceled",))
        task.polls = 0
        return web.json_response({"request_id": secrets.token_hex(8)})

    async def _list(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "list")
        if denied is not None:
            return denied
        q = request.query
        try:
            start = self._parse_wall(q.get("start_time"))
            end = self._parse_wall(q.get("end_time"))
            page_no, page_size = int(q.get("page_no", "1")), int(q.get("page_size", "10"))
        except ValueError:
            return _bad("start_time and end_time are YYYYMMDDhhmmss; page_no, page_size integers")
        now = int(time.time() * 1000)
        end = end if end is not None else (start + 86_400_000 if start is not None else now)
        start = start if start is not None else end - 86_400_000
        if end - start > 86_400_000:
            return _bad("The time range cannot exceed 24 hours")
        found = [
            t
            for t in sorted(self.tasks.values(), key=lambda t: t.created_at, reverse=True)
            if start <= int(t.created_at * 1000) <= end
            and q.get("model_name") in (None, t.body.get("model"))
            and q.get("status") in (None, self._word(t, t.state))
        ]
        page = found[(page_no - 1) * page_size : page_no * page_size]
        data = [self._item(t) for t in page]
        total_page = max(1, -(-len(found) // page_size))
        return web.json_response({"request_id": secrets.token_hex(8), "data": data,
                                  "total": len(found), "total_page": total_page,
                                  "page_no": page_no, "page_size": page_size})  # fmt: skip

    def _item(self, task: FakeTask) -> dict[str, Any]:
        created = int(task.created_at * 1000)
        model = task.body.get("model")
        item = {
            "api_key_id": "1250",
            "caller_parent_id": "1000000",
            "caller_uid": "1000000",
            "gmt_create": created,
            "start_time": created + 20,
            "model_name": model,
            "region": "cn-beijing",
            "request_id": secrets.token_hex(8),
            "status": self._word(task, task.state),
            "task_id": task.id,
            "user_api_unique_key": f"apikey:v1:aigc:video-generation:video-synthesis:{model}",
        }
        if task.finished:
            item["end_time"] = created + 5000
        return item

    @staticmethod
    def _parse_wall(text: str | None) -> int | None:
        if not text:
            return None
        wall = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC) - BEIJING
        return int(wall.timestamp() * 1000)
