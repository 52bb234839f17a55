"""OpenAI-style videos (`/videos`) and images (`/images/generations`, `/images/edits`): pure
translation, PROVIDERS §8.

Videos: create is multipart (as the SDK sends it): `prompt`, `model`, `seconds` (a string),
`size` (`WxH`), `input_reference` (the first input image, as a file). Poll `GET /videos/{id}`;
statuses queued | in_progress | completed | failed. The result is downloaded with the channel's
own auth from `/videos/{id}/content` (`variant=video`, and `variant=thumbnail` as the cover).
No idempotency field exists: a create of unknown outcome is recovered from `GET /videos` (newest
first) by model, prompt and creation time. No cancel (`DELETE` removes a finished video).

Images: synchronous upstream calls. Generation is JSON, edits are always multipart (`image` for
one file, repeated `image[]` for several, `mask`). The reply carries the images (`b64_json`, or a
`url` valid 60 minutes), so submit completes the task at once (`Submitted.result`).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any, ClassVar

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.openai_media.errors import classify, failure_kind
from llmage.providers.tasks import (
    BaseTaskAdapter,
    CallContext,
    MediaInput,
    PollResult,
    Submitted,
    TaskJob,
    TaskOutput,
    TaskRef,
)
from llmage.providers.wire import (
    FormPart,
    UpstreamReply,
    UpstreamRequest,
    dig,
    join_url,
    json_request,
    multipart_request,
)

_STATUS = {
    "queued": TaskStatus.PENDING,
    "in_progress": TaskStatus.RUNNING,
    "completed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}
_SIZE_RE = re.compile(r"^\s*(\d{2,5})\s*[*xX×]\s*(\d{2,5})\s*$")
_SHORT_SIDE = {"480p": 480, "540p": 540, "720p": 720, "1080p": 1080}
# Image request fields passed through when the catalog entry has them.
_IMAGE_FIELDS = ("n", "size", "quality", "background", "output_format", "style", "user")
_EXT = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def video_size(params: dict[str, Any] | Any) -> str | None:
    """`WxH` from `size` (`1280*720`, `1280x720`) or from resolution + ratio (720p 16:9 →
    1280x720); None when the request says neither (the upstream default applies)."""
    raw = params.get("size")
    if raw:
        match = _SIZE_RE.match(str(raw))
        return f"{match[1]}x{match[2]}" if match else str(raw)
    short = _SHORT_SIDE.get(str(params.get("resolution") or "").lower())
    ratio = str(params.get("ratio") or "")
    if short is None:
        return None
    a, _, b = ratio.partition(":")
    if not (a.isdigit() and b.isdigit()) or int(a) == 0 or int(b) == 0:
        a, b = "16", "9"
    wide, tall = int(a), int(b)
    long_side = 2 * round(short * max(wide, tall) / min(wide, tall) / 2)
    return f"{long_side}x{short}" if wide >= tall else f"{short}x{long_side}"


def _images(job: TaskJob) -> Iterator[MediaInput]:
    for files in job.media.values():
        for f in files:
            if f.content_type.startswith("image/"):
                yield f


def _file_part(name: str, f: MediaInput, index: int) -> FormPart:
    assert f.data is not None, "the executor loads bytes when needs_bytes() is True"
    filename = f"input{index}.{_EXT.get(f.content_type, 'bin')}"
    return FormPart(name, f.data, filename=filename, content_type=f.content_type)


class OpenAIMediaAdapter(BaseTaskAdapter):
    name: ClassVar[str] = "openai_media"
    default_base_url: ClassVar[str] = "https://api.openai.com/v1"
    poll_interval: ClassVar[float] = 2.0

    # -- submit ---------------------------------------------------------------------------------

    def needs_bytes(self, job: TaskJob) -> bool:
        return any(True for _ in _images(job))

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        if job.kind == "image":
            return self._image_request(ctx, job)
        prompt = str(job.params.get("prompt") or "")
        parts = [FormPart("prompt", prompt), FormPart("model", job.model)]
        if job.params.get("duration") is not None:
            parts.append(FormPart("seconds", str(job.params["duration"])))
        size = video_size(job.params)
        if size:
            parts.append(FormPart("size", size))
        first = next(_images(job), None)
        if first is not None:
            parts.append(_file_part("input_reference", first, 1))
        return multipart_request("POST", join_url(ctx.base_url, "videos"), parts)

    def _image_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        fields: dict[str, Any] = {"model": job.model, "prompt": str(job.params.get("prompt") or "")}
        for name in _IMAGE_FIELDS:
            if job.params.get(name) is not None:
                fields[name] = job.params[name]
        if isinstance(fields.get("size"), str):
            fields["size"] = fields["size"].replace("*", "x")
        if ctx.option("response_format"):
            fields["response_format"] = ctx.option("response_format")
        images = list(_images(job))
        if not images:
            return json_request("POST", join_url(ctx.base_url, "images/generations"), fields)
        name = "image" if len(images) == 1 else "image[]"
        parts = [FormPart(k, str(v)) for k, v in fields.items()]
        parts += [_file_part(name, f, i + 1) for i, f in enumerate(images)]
        return multipart_request("POST", join_url(ctx.base_url, "images/edits"), parts)

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        data = reply.json()
        if job.kind == "image":
            return Submitted(f"img-{job.task_id}", result=self._image_result(data))
        video_id = dig(data, "id")
        if not isinstance(video_id, str) or not video_id:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Video create reply has no id")
        return Submitted(video_id)

    @staticmethod
    def _image_result(data: Any) -> PollResult:
        outputs = []
        fmt = str(dig(data, "output_format") or "png")
        for item in dig(data, "data") or []:
            if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
                try:
                    raw = base64.b64decode(item["b64_json"], validate=True)
                except (binascii.Error, ValueError):
                    raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Image is not base64") from None
                outputs.append(TaskOutput("image", f"image/{fmt}", data=raw))
            elif isinstance(item, dict) and isinstance(item.get("url"), str):
                outputs.append(TaskOutput("image", f"image/{fmt}", url=item["url"]))
        if not outputs:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Image reply holds no image")
        tokens = dig(data, "usage", "total_tokens")
        return PollResult(
            TaskStatus.SUCCEEDED,
            progress=100,
            outputs=outputs,
            usage=Usage(images=len(outputs), tokens=tokens if isinstance(tokens, int) else None),
        )

    # -- poll -----------------------------------------------------------------------------------

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        return UpstreamRequest("GET", join_url(ctx.base_url, f"videos/{ref.upstream_id}"))

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        data = reply.json()
        word = str(dig(data, "status") or "")
        status = _STATUS.get(word, TaskStatus.RUNNING)  # undocumented: still running
        hint_ms = reply.headers.get("openai-poll-after-ms")
        poll_after = float(hint_ms) / 1000 if hint_ms and hint_ms.isdigit() else None
        progress = dig(data, "progress")
        progress = int(progress) if isinstance(progress, int | float) else None
        if status is TaskStatus.FAILED:
            code = dig(data, "error", "code")
            code = str(code) if code else None
            return PollResult(
                TaskStatus.FAILED,
                error_kind=failure_kind(code),
                error_code=code or "failed",
                error_message=str(dig(data, "error", "message") or "The video generation failed"),
            )
        if status is not TaskStatus.SUCCEEDED:
            return PollResult(status, progress=progress, poll_after=poll_after)
        content = f"videos/{ref.upstream_id}/content"
        accept = {"Accept": "application/binary"}
        seconds = dig(data, "seconds")
        size = str(dig(data, "size") or "")
        return PollResult(
            TaskStatus.SUCCEEDED,
            progress=100,
            outputs=(
                TaskOutput(
                    "video",
                    "video/mp4",
                    fetch=UpstreamRequest("GET", f"{content}?variant=video", accept),
                ),
                TaskOutput(
                    "cover",
                    "image/webp",
                    fetch=UpstreamRequest("GET", f"{content}?variant=thumbnail", accept),
                ),
            ),
            usage=Usage(
                seconds=float(seconds) if _is_number(seconds) else None,
                resolution=_tier(size),
            ),
        )

    # -- recover and probe ----------------------------------------------------------------------

    def recover_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest | None:
        if job.kind == "image":
            return None  # synchronous: nothing upstream to find afterwards
        url = join_url(ctx.base_url, "videos", {"limit": 100, "order": "desc"})
        return UpstreamRequest("GET", url)

    def parse_recover(self, job: TaskJob, reply: UpstreamReply) -> Submitted | None:
        """The video our lost create made: same model and prompt, created at or after the
        create started (a few seconds of clock skew allowed); the earliest such one."""
        since = job.submitted_at_ms / 1000 - 5
        prompt = str(job.params.get("prompt") or "")
        found = [
            v
            for v in dig(reply.json(), "data") or []
            if isinstance(v, dict)
            and v.get("model") == job.model
            and (v.get("prompt") in (None, prompt))
            and _is_number(v.get("created_at"))
            and float(v["created_at"]) >= since
            and isinstance(v.get("id"), str)
            and v["id"] not in job.claimed  # another task of ours owns it
        ]
        if not found:
            return None
        first = min(found, key=lambda v: float(v["created_at"]))
        return Submitted(str(first["id"]))

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        return UpstreamRequest("GET", join_url(ctx.base_url, "videos", {"limit": 1}))

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        return classify(reply)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _tier(size: str) -> str | None:
    match = _SIZE_RE.match(size)
    if match is None:
        return None
    short = min(int(match[1]), int(match[2]))
    return min(_SHORT_SIDE, key=lambda tier: abs(_SHORT_SIDE[tier] - short))
