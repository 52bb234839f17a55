"""A fake Vidu (`/ent/v2`), on the shared fake framework: it speaks Vidu's real protocol.

It checks what Vidu checks: `Authorization: Token <key>` (a Bearer header is refused, 401
`Unauthorized`); JSON bodies; per endpoint the model, the image count (img2video 1,
start-end2video 2, reference2video 1-7, viduq3-mix 1-4; text2video none), `duration`,
`resolution` and `aspect_ratio` per model (the image modes take no `aspect_ratio`), `off_peak`
a boolean, `audio` on Q3 only and `bgm` / `movement_amplitude` on older models only, `payload`
at most 1,048,576 characters; unknown fields are refused (`FieldUnwanted`), so nothing an
adapter should not send gets through. Errors are `{code, reason, message, metadata}`.

Tasks move one state per poll (created → queueing → processing → success, or failed with an
`err_code`; output moderation is `CreationPolicyViolation`), echo our `payload`, are listed
newest first by `GET /ent/v2/tasks` (window and page size as Vidu's), can be cancelled while
not yet scheduled, and bill `credits` on success from a per-second table (off-peak halves it)
out of the account's `credit_balance` (a create it cannot cover: 400 `CreditInsufficient`). A
prompt with a `BANNED` word is refused by its content review (`TaskPromptPolicyViolation`).
Results are a real MP4 and a distinct JPEG cover at URLs that expire (`expire_files()`).
"""

from __future__ import annotations

import io
import json
import math
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from PIL import Image

from support.fakes import FakeTask, FakeUpstream, Lifecycle, tiny_mp4

TEXT, IMAGE, START_END, REFERENCE = "text2video", "img2video", "start-end2video", "reference2video"
Q3 = ("viduq3-pro", "viduq3-turbo")
Q2 = ("viduq2", "viduq2-pro", "viduq2-turbo", "viduq2-pro-fast")
OLDER = ("viduq1", "viduq1-classic", "vidu2.0", "vidu1.5")
MODELS = {
    TEXT: Q3 + Q2 + OLDER,
    IMAGE: Q3 + Q2 + OLDER,
    START_END: Q3 + Q2 + OLDER,
    REFERENCE: ("viduq3", "viduq3-mix", "viduq2", "viduq1", "vidu2.0"),
}
FIELDS = frozenset(
    {"model", "images", "prompt", "duration", "seed", "aspect_ratio", "resolution", "off_peak"}
    | {"movement_amplitude", "bgm", "audio", "audio_type", "voice_id", "is_rec", "style"}
    | {"watermark", "wm_position", "wm_url", "meta_data", "payload", "callback_url"}
)
# credits per second by model and resolution (a reseller's table for viduq3-pro [3p]; the rest
# made up for the fake, below the catalog's per-second prices)
CREDITS_PER_SECOND = {
    "viduq3-pro": {"540p": 14, "720p": 30, "1080p": 32},
    "viduq3-mix": {"540p": 14, "720p": 30, "1080p": 32},
    "viduq3-turbo": {"540p": 8, "720p": 17, "1080p": 19},
    "viduq2-turbo": {"540p": 6, "720p": 12, "1080p": 16},
    "viduq1": {"1080p": 16},
}
_SHORT = {"360p": 360, "540p": 540, "720p": 720, "1080p": 1080}


def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (128, 72), color).save(buf, "JPEG")
    return buf.getvalue()


COVER = _jpeg((200, 40, 90))  # Vidu's own cover: not the first frame of the video
# created (first poll), queueing, processing, success: every documented state once
ALL_STATES = Lifecycle(("queued", "queued", "running", "succeeded"))
BANNED = ("forbidden-topic",)  # prompts the fake's content review refuses


def error(status: int, reason: str, message: str) -> web.Response:
    body = {"code": status, "reason": reason, "message": message,
            "metadata": {"trace_id": secrets.token_hex(8)}}  # fmt: skip
    return web.json_response(body, status=status)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _is_image(value: Any) -> bool:
    return isinstance(value, str) and (
        value.startswith(("http://", "https://")) or value.startswith("data:image/")
    )


def _dims(resolution: str, ratio: str) -> tuple[int, int]:
    short = _SHORT.get(resolution, 720)
    a, b = (int(x) for x in ratio.split(":"))
    long_side = 2 * round(short * max(a, b) / min(a, b) / 2)
    return (long_side, short) if a >= b else (short, long_side)


def credits_for(body: dict[str, Any], model: str) -> int:
    table = CREDITS_PER_SECOND.get(model, {"540p": 10, "720p": 20, "1080p": 30})
    per_second = table.get(body.get("resolution", "720p"), 20)
    total = per_second * int(body.get("duration", 5))
    return math.ceil(total / 2) if body.get("off_peak") else total


class ViduFake(FakeUpstream):
    api_key = "vidu-fake-key-0123456789abcdef"

    def __init__(self) -> None:
        super().__init__()
        self.lifecycle = ALL_STATES
        self.endpoint: dict[str, str] = {}  # task id -> the create path it came from
        self.with_cover = True
        self.report_credits: int | None = None  # override the credits a success bills
        self.fail_after_create = 0  # creates that make a task, then answer 500 (lost reply)
        self.cancelled: list[str] = []
        self.credit_balance: int | None = None  # the account's credits; None: unlimited
        self.billed: set[str] = set()

    def reset(self) -> None:
        self.lifecycle = ALL_STATES
        self._expired = False
        self._failures.clear()
        self.requests.clear()
        self.tasks.clear()
        self.endpoint.clear()
        self.creates = 0
        self.with_cover = True
        self.report_credits = None
        self.fail_after_create = 0
        self.cancelled.clear()
        self.credit_balance = None

    def check_auth(self, request: web.Request, body: bytes) -> web.StreamResponse | None:
        if request.headers.get("Authorization") == f"Token {self.api_key}":
            return None
        return error(401, "Unauthorized", "invalid api key")

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for path in (TEXT, IMAGE, START_END, REFERENCE):
            router.add_post(f"/ent/v2/{path}", self._create)
        router.add_get("/ent/v2/tasks", self._list)
        router.add_get("/ent/v2/tasks/{id}/creations", self._query)
        router.add_post("/ent/v2/tasks/{id}/cancel", self._cancel)

    # -- create ---------------------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        raw, denied = await self.guard(request, "create")
        if denied is not None:
            return denied
        path = request.path.rsplit("/", 1)[1]
        if request.content_type != "application/json":
            return error(400, "BadRequest", "content type must be application/json")
        try:
            body = json.loads(raw)
        except ValueError:
            return error(400, "BadRequest", "body is not JSON")
        if not isinstance(body, dict):
            return error(400, "BadRequest", "body must be an object")
        refused = self._validate(path, body)
        if refused is not None:
            return refused
        if any(word in str(body.get("prompt", "")) for word in BANNED):
            return error(400, "TaskPromptPolicyViolation", "prompt violates the content policy")
        estimate = credits_for(body, body["model"])
        if self.credit_balance is not None and self.credit_balance < estimate:
            return error(400, "CreditInsufficient", "credit insufficient")
        task = self.new_task(body, prefix="vidu")
        self.endpoint[task.id] = path
        await self.created()
        if self.fail_after_create > 0:
            self.fail_after_create -= 1
            return error(500, "InternalServiceFailure", "internal error")
        reply = {
            **body,
            "task_id": task.id,
            "state": "created",
            "credits": estimate,  # the pre-charge estimate
            "created_at": iso(task.created_at),
        }
        return web.json_response(reply)

    def _validate(self, path: str, body: dict[str, Any]) -> web.Response | None:
        unknown = sorted(set(body) - FIELDS)
        if unknown:
            return error(400, "FieldUnwanted", f"field {unknown[0]} is not allowed")
        model = body.get("model")
        if not isinstance(model, str) or not model:
            return error(400, "FieldLacking", "model is required")
        if model not in MODELS[path]:
            return error(400, "FieldInvalid", f"model {model} is not supported by {path}")
        prompt = body.get("prompt")
        if path in (TEXT, REFERENCE) and not prompt:
            return error(400, "FieldLacking", "prompt is required")
        if prompt is not None and (not isinstance(prompt, str) or len(prompt) > 5000):
            return error(400, "FieldInvalid", "prompt must be a string of at most 5000 chars")
        images = body.get("images")
        want = {TEXT: (0, 0), IMAGE: (1, 1), START_END: (2, 2), REFERENCE: (1, 7)}[path]
        if model == "viduq3-mix":
            want = (1, 4)
        if path == TEXT and images is not None:
            return error(400, "FieldUnwanted", "images is not allowed for text2video")
        if path != TEXT:
            if not isinstance(images, list) or not all(_is_image(i) for i in images):
                return error(400, "FieldInvalid", "images must be a list of URLs or base64")
            if not want[0] <= len(images) <= want[1]:
                return error(400, "FieldItemCountOutOfRange", f"images needs {want[0]}-{want[1]}")
        refused = self._validate_output(path, model, body)
        if refused is not None:
            return refused
        payload = body.get("payload")
        if payload is not None and (not isinstance(payload, str) or len(payload) > 1_048_576):
            return error(400, "FieldInvalid", "payload must be a string of at most 1048576 chars")
        for flag in ("off_peak", "bgm", "audio", "watermark", "is_rec"):
            if flag in body and not isinstance(body[flag], bool):
                return error(400, "FieldInvalid", f"{flag} must be a boolean")
        q3 = model.startswith("viduq3")
        for name in ("audio", "audio_type") if not q3 else ("bgm", "movement_amplitude", "style"):
            if name in body:
                return error(400, "FieldUnwanted", f"{name} is not supported by {model}")
        return None

    @staticmethod
    def _validate_output(path: str, model: str, body: dict[str, Any]) -> web.Response | None:
        duration = body.get("duration", 5)
        if not isinstance(duration, int) or isinstance(duration, bool):
            return error(400, "FieldInvalid", "duration must be an integer")
        if model.startswith("viduq3"):
            durations, resolutions = range(1, 17), ("540p", "720p", "1080p")
        elif model.startswith("viduq2"):
            durations = range(1, 11) if path == TEXT else range(1, 9)
            resolutions = ("540p", "720p", "1080p")
        elif model.startswith("viduq1"):
            durations, resolutions = range(5, 6), ("1080p",)
        else:
            durations, resolutions = range(4, 9, 4), ("360p", "720p", "1080p")
        if duration not in durations:
            return error(400, "FieldInvalid", f"duration {duration} is not supported by {model}")
        if body.get("resolution", resolutions[-1]) not in resolutions:
            return error(400, "FieldInvalid", f"resolution is not supported by {model}")
        ratio = body.get("aspect_ratio")
        if ratio is not None:
            if path not in (TEXT, REFERENCE):
                return error(400, "FieldUnwanted", f"aspect_ratio is not allowed for {path}")
            ratios = ("16:9", "9:16", "1:1")
            if model.startswith(("viduq2", "viduq3")):
                ratios += ("3:4", "4:3")
            if ratio not in ratios:
                return error(400, "FieldInvalid", f"aspect_ratio {ratio} is not supported")
        return None

    # -- query ----------------------------------------------------------------------------------

    def _state(self, task: FakeTask, state: str) -> dict[str, Any]:
        """A task as the query reply (and the list) shows it, for the generic `state`."""
        body = task.body
        word = {
            "queued": "created" if task.polls <= 1 else "queueing",
            "running": "processing",
            "succeeded": "success",
        }.get(state, "failed")
        view: dict[str, Any] = {
            "id": task.id,
            "state": word,
            "err_code": "",
            "credits": 0,
            "payload": body.get("payload", ""),
            "bgm": bool(body.get("bgm", False)),
            "off_peak": bool(body.get("off_peak", False)),
            "creations": [],
        }
        if state == "failed":
            view["err_code"] = task.lifecycle.error_code
        elif state == "output_moderation":
            view["err_code"] = "CreationPolicyViolation"
        elif word == "success":
            view["credits"] = (
                self.report_credits
                if self.report_credits is not None
                else credits_for(body, body["model"])
            )
            view["creations"] = [self._creation(task)]
            if self.credit_balance is not None and task.id not in self.billed:
                self.credit_balance -= view["credits"]  # deducted on success only
                self.billed.add(task.id)
        return view

    def _creation(self, task: FakeTask) -> dict[str, Any]:
        if not task.result:
            width, height = _dims(task.body.get("resolution", "720p"),
                                  task.body.get("aspect_ratio", "16:9"))  # fmt: skip
            task.result = {
                "id": "c" + secrets.token_hex(6),
                "url": self.publish(tiny_mp4(), "video/mp4"),
                "cover_url": self.publish(COVER, "image/jpeg") if self.with_cover else "",
                "video": {"duration": float(task.body.get("duration", 5)) + 0.04, "fps": 24,
                          "resolution": {"width": width, "height": height}},
            }  # fmt: skip
        return task.result

    async def _query(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "poll")
        if denied is not None:
            return denied
        task = self.tasks.get(request.match_info["id"])
        if task is None or task.state == "gone":
            return error(404, "TaskNotFound", "task not found")
        state = self.step(task)
        return web.json_response(self._state(task, state))

    # -- list and cancel ------------------------------------------------------------------------

    async def _list(self, request: web.Request) -> web.StreamResponse:
        _, denied = await self.guard(request, "list")
        if denied is not None:
            return denied
        q = request.query
        try:
            size = int(q.get("pager.pagesz", "10"))
            since = _parse_iso(q["created_at.from"]) if "created_at.from" in q else 0.0
            until = _parse_iso(q["created_at.to"]) if "created_at.to" in q else float("inf")
        except ValueError:
            return error(400, "FieldInvalid", "bad query")
        if not 1 <= size <= 100:
            return error(400, "PageSizeOutOfRange", "pager.pagesz must be 1-100")
        found = [t for t in self.tasks.values() if since <= t.created_at <= until]
        found.sort(key=lambda t: t.created_at, reverse=True)
        page = found[:size]
        tasks = []
        for t in page:
            view = self._state(t, t.state)
            body = t.body
            view.update({"model": body["model"], "prompt": body.get("prompt", ""),
                         "images": body.get("images", []), "duration": body.get("duration", 5),
                         "resolution": body.get("resolution", ""),
                         "aspect_ratio": body.get("aspect_ratio", ""),
                         "created_at": iso(t.created_at)})  # fmt: skip
            tasks.append(view)
        token = secrets.token_hex(6) if len(found) > size else ""
        return web.json_response({"next_page_token": token, "tasks": tasks})

    async def _cancel(self, request: web.Request) -> web.StreamResponse:
        raw, denied = await self.guard(request, "cancel")
        if denied is not None:
            return denied
        task_id = request.match_info["id"]
        task = self.tasks.get(task_id)
        if task is None:
            return error(404, "TaskNotFound", "task not found")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or body.get("id") != task_id:
            return error(400, "FieldInvalid", "id must be the task id")
        if task.state != "queued":
            return error(400, "BadRequest", "task state is scheduled, can not cancel")
        task.lifecycle = Lifecycle(("failed",), "UserCancelled", "cancelled")
        task.polls = 0
        self.cancelled.append(task_id)
        return web.json_response({})
