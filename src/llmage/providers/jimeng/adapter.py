"""Jimeng adapter: pure translation, PROVIDERS.md §7.

Create: `POST /?Action=CVSync2AsyncSubmitTask&Version=2022-08-31` with `req_key` (the upstream
model name), `prompt`, `seed` (-1: random), `aspect_ratio` (never empty: text-to-video defaults to
16:9), `frames` (121 = 5 s, 241 = 10 s) and, for the image modes, `image_urls` (first frame, then
the last frame for `*_first_tail_*` models) as signed URLs of our copies, or `binary_data_base64`
(raw, no `data:` prefix) when the channel option `image_base64` is set.

Query: `POST /?Action=CVSync2AsyncGetResult&Version=2022-08-31` with `{req_key, task_id}`; the
query MUST reuse the submit's `req_key`, stored with the upstream id. Success only when
`code == 10000` and `data.status == done`; the video is `data.video_url` (older S2.0:
`data.resp_data`, a JSON string with `urls[]`), valid for one hour, so the media service copies it
at once. `not_found` / `expired`: the task is gone. No usage in the reply: billed from the frames
asked for. No cover (the gateway cuts the first frame), no cancel, no idempotency key and no list:
a create of unknown outcome cannot be recovered and fails unbilled.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, ClassVar

import orjson

from llmage.domain.credentials import KeyPair
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.jimeng.errors import CODES, OK, body_code, classify
from llmage.providers.jimeng.signing import sign_headers
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
from llmage.providers.wire import UpstreamReply, UpstreamRequest, dig, join_url, json_request

log = logging.getLogger(__name__)

VERSION = "2022-08-31"
SUBMIT = "CVSync2AsyncSubmitTask"
QUERY = "CVSync2AsyncGetResult"
FPS = 24  # frames = FPS * seconds + 1: 121 = 5 s, 241 = 10 s
PROBE_REQ_KEY = "jimeng_vgfm_t2v_l20"

_STATUS = {
    "in_queue": TaskStatus.PENDING,
    "processing": TaskStatus.PENDING,  # pre-processing, not yet generating
    "generating": TaskStatus.RUNNING,
}
_GONE = ("not_found", "expired")
# The kinds a finished task's failure code keeps; any other code is Jimeng's own failure.
_FAILED_KINDS = (
    UpstreamKind.INPUT_MODERATION,
    UpstreamKind.OUTPUT_MODERATION,
    UpstreamKind.BAD_REQUEST,
)
FIRST_SLOTS = ("image1_file", "image", "first_frame")
LAST_SLOTS = ("image2_file", "image_tail", "last_frame")


def _first(job: TaskJob, slots: tuple[str, ...]) -> MediaInput | None:
    for slot in slots:
        files = job.files(slot)
        if files:
            return files[0]
    return None


def frames(seconds: Any) -> int:
    """The frame count Jimeng takes for a clip of `seconds` (5 unless asked otherwise)."""
    try:
        whole = int(seconds) if seconds is not None else 5
    except (TypeError, ValueError):
        whole = 5
    return FPS * whole + 1


def action_url(base_url: str, action: str) -> str:
    return join_url(base_url, "/", {"Action": action, "Version": VERSION})


def _images(job: TaskJob) -> list[MediaInput]:
    first = _first(job, FIRST_SLOTS)
    if first is None:
        return []
    images = [first]
    last = _first(job, LAST_SLOTS)
    if last is not None:
        images.append(last)
    return images


class JimengAdapter(BaseTaskAdapter):
    name: ClassVar[str] = "jimeng"
    default_base_url: ClassVar[str] = "https://visual.volcengineapi.com"
    poll_interval: ClassVar[float] = 5.0

    # -- submit ---------------------------------------------------------------------------------

    def needs_bytes(self, job: TaskJob) -> bool:
        # The base64 form is a channel option this hook cannot see: an image job always has
        # its bytes loaded (at most two images, once per create).
        return _first(job, FIRST_SLOTS) is not None

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        params = job.params
        seed = params.get("seed")
        body: dict[str, Any] = {
            "req_key": job.model,
            "prompt": str(params.get("prompt") or ""),
            "seed": int(seed) if seed is not None else -1,
            "frames": frames(params.get("duration")),
        }
        ratio = str(params.get("ratio") or "")
        images = _images(job)
        if images:
            if ctx.option("image_base64", False):
                assert all(f.data is not None for f in images), "needs_bytes() loads them"
                body["binary_data_base64"] = [
                    base64.b64encode(f.data or b"").decode("ascii") for f in images
                ]
            else:
                body["image_urls"] = [f.url for f in images]
            if ratio:  # image modes follow the picture unless asked; never an empty value
                body["aspect_ratio"] = ratio
        else:
            body["aspect_ratio"] = ratio or "16:9"
        return json_request("POST", action_url(ctx.base_url, SUBMIT), body)

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        task_id = dig(reply.json(), "data", "task_id")
        if isinstance(task_id, int) and not isinstance(task_id, bool):
            task_id = str(task_id)
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Jimeng create reply has no task_id")
        return Submitted(task_id, state={"req_key": job.model})

    # -- poll -----------------------------------------------------------------------------------

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        req_key = ref.state.get("req_key") or ref.job.model
        body = {"req_key": req_key, "task_id": ref.upstream_id}
        return json_request("POST", action_url(ctx.base_url, QUERY), body)

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        payload = reply.json()
        code = body_code(payload)
        data = dig(payload, "data")
        word = str(dig(data, "status") or "")
        if code != OK:
            # `done` with a failure code (classify let it through): the task ended badly.
            message = str(dig(payload, "message") or "") or "The video generation failed"
            kind = CODES.get(code) if code is not None else None
            if kind not in _FAILED_KINDS:
                kind = UpstreamKind.RETRYABLE  # Jimeng's own failure
            return PollResult(
                TaskStatus.FAILED,
                error_kind=kind,
                error_code=str(code) if code is not None else "failed",
                error_message=message,
            )
        if word in _GONE:
            return PollResult(
                TaskStatus.FAILED,
                error_kind=UpstreamKind.TASK_GONE,
                error_code=word,
                error_message=f"Jimeng reports the task {word.replace('_', ' ')}",
            )
        if word != "done":
            status = _STATUS.get(word)
            if status is None:
                log.warning("jimeng task %s: undocumented status %r", ref.upstream_id, word)
                return PollResult(TaskStatus.RUNNING)
            return PollResult(status, progress=0 if status is TaskStatus.PENDING else None)
        url = video_url(data)
        if url is None:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Jimeng task done with no video")
        return PollResult(
            TaskStatus.SUCCEEDED,
            progress=100,
            outputs=(TaskOutput("video", "video/mp4", url=url),),  # no cover: first frame
            usage=usage(ref.job),
        )

    # -- probe ----------------------------------------------------------------------------------

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        # A signed query of a task that does not exist: proves the key pair and the service.
        body = {"req_key": PROBE_REQ_KEY, "task_id": "0"}
        return json_request("POST", action_url(ctx.base_url, QUERY), body)

    # -- auth and errors ------------------------------------------------------------------------

    def sign(self, ctx: CallContext, request: UpstreamRequest) -> UpstreamRequest:
        cred = ctx.credential
        if not isinstance(cred, KeyPair):
            return request  # Jimeng takes only an access/secret key pair: unsigned is refused
        content_type = request.header("Content-Type") or "application/json"
        headers = sign_headers(
            request.method,
            request.url,
            request.body,
            cred.access_key,
            cred.secret_key,
            ctx.now,
            content_type,
        )
        return request.with_headers(headers)

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        data = reply.json_or_none()
        code = body_code(data)
        if reply.ok and code not in (None, OK) and dig(data, "data", "status") == "done":
            return None  # a finished task with a failure code: parse_poll ends it
        return classify(reply)


def video_url(data: Any) -> str | None:
    """`data.video_url`, else the older `data.resp_data` (a JSON string with `urls[]`)."""
    url = dig(data, "video_url")
    if isinstance(url, str) and url:
        return url
    raw = dig(data, "resp_data")
    if isinstance(raw, str) and raw:
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
    first = dig(raw, "urls", 0)
    return first if isinstance(first, str) and first else None


def usage(job: TaskJob) -> Usage:
    """Jimeng reports nothing: the frames asked for are what it made and bills."""
    count = frames(job.params.get("duration"))
    return Usage(frames=count, seconds=(count - 1) // FPS)
