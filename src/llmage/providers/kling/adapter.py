"""Kling video adapter: pure translation, PROVIDERS.md §6.

Create: `POST /v1/videos/text2video` or `/v1/videos/image2video` (first frame `image`, optional
last frame `image_tail`), JSON with `model_name`, `prompt`, `duration` as a STRING, `mode`,
`aspect_ratio` (text2video only: image2video follows the image), `cfg_scale` (not on v2.x / v3),
and `external_task_id` = our task id — Kling's idempotency key. Images go as the signed URL of our
copy, or (channel option `image_base64`) as raw base64 WITHOUT a `data:` prefix.

Query: `GET /v1/videos/{family}/{id}` (family stored at submit); statuses submitted | processing
| succeed | failed. The failure reason is ONLY in `data.task_status_msg` (the top-level `message`
stays "SUCCEED"). A create of unknown outcome is recovered by querying the family with our task
id as the external id. Usage: `final_unit_deduction` (units, a string) and the video's own
`duration`. No cover: the gateway cuts the first frame. No cancel.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from llmage.domain.credentials import KeyPair
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.kling.errors import classify, failure_kind
from llmage.providers.kling.signing import TokenCache
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

_STATUS = {
    "submitted": TaskStatus.PENDING,
    "processing": TaskStatus.RUNNING,
    "succeed": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}
FIRST_SLOTS = ("image1_file", "image", "first_frame")
LAST_SLOTS = ("image2_file", "image_tail", "last_frame")
# Models without `cfg_scale` (PROVIDERS §6: "not v2.x").
_NO_CFG_PREFIXES = ("kling-v2", "kling-v3")


def _first(job: TaskJob, slots: tuple[str, ...]) -> MediaInput | None:
    for slot in slots:
        files = job.files(slot)
        if files:
            return files[0]
    return None


def _image_value(ctx: CallContext, f: MediaInput) -> str:
    if ctx.option("image_base64", False):
        assert f.data is not None, "the executor loads bytes when needs_bytes() is True"
        return base64.b64encode(f.data).decode("ascii")  # raw: Kling refuses a data: prefix
    return f.url


def _family(state: Mapping[str, str]) -> str:
    """The endpoint family a task was created on (its query lives under the same path)."""
    family = state.get("family")
    return family if family in ("text2video", "image2video") else "text2video"


class KlingAdapter(BaseTaskAdapter):
    name: ClassVar[str] = "kling"
    default_base_url: ClassVar[str] = "https://api-beijing.klingai.com"
    poll_interval: ClassVar[float] = 5.0

    def __init__(self) -> None:
        self._tokens = TokenCache()

    # -- submit ---------------------------------------------------------------------------------

    def needs_bytes(self, job: TaskJob) -> bool:
        # Whether images go inline is a channel option this hook cannot see: an image job
        # always has its bytes loaded (at most two images of <= 10 MB, once per create).
        return _first(job, FIRST_SLOTS) is not None

    @staticmethod
    def family(job: TaskJob) -> str:
        return "image2video" if _first(job, FIRST_SLOTS) is not None else "text2video"

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        params = job.params
        family = self.family(job)
        body: dict[str, Any] = {
            "model_name": job.model,
            "prompt": str(params.get("prompt") or ""),
            "external_task_id": job.task_id,
        }
        if params.get("negative_prompt"):
            body["negative_prompt"] = str(params["negative_prompt"])
        if params.get("duration") is not None:
            body["duration"] = str(int(params["duration"]))  # Kling wants a string
        if params.get("mode"):
            body["mode"] = str(params["mode"])
        if params.get("cfg_scale") is not None and not job.model.startswith(_NO_CFG_PREFIXES):
            body["cfg_scale"] = float(params["cfg_scale"])
        if family == "text2video":
            if params.get("ratio"):
                body["aspect_ratio"] = str(params["ratio"])
        else:
            first = _first(job, FIRST_SLOTS)
            assert first is not None
            body["image"] = _image_value(ctx, first)
            tail = _first(job, LAST_SLOTS)
            if tail is not None:
                body["image_tail"] = _image_value(ctx, tail)
        return json_request("POST", join_url(ctx.base_url, f"v1/videos/{family}"), body)

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        task_id = dig(reply.json(), "data", "task_id")
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Kling create reply has no task_id")
        return Submitted(task_id, state={"family": self.family(job)})

    # -- poll -----------------------------------------------------------------------------------

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        url = join_url(ctx.base_url, f"v1/videos/{_family(ref.state)}/{ref.upstream_id}")
        return UpstreamRequest("GET", url)

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        data = dig(reply.json(), "data")
        word = str(dig(data, "task_status") or "")
        status = _STATUS.get(word)
        if status is None:
            log.warning("kling task %s: undocumented status %r", ref.upstream_id, word)
            return PollResult(TaskStatus.RUNNING)
        if status is TaskStatus.FAILED:
            # The reason lives ONLY here: the top-level message says SUCCEED for the call.
            msg = str(dig(data, "task_status_msg") or "") or "The video generation failed"
            return PollResult(
                TaskStatus.FAILED,
                error_kind=failure_kind(msg),
                error_code="failed",
                error_message=msg,
            )
        if status is not TaskStatus.SUCCEEDED:
            return PollResult(status, progress=0 if status is TaskStatus.PENDING else None)
        videos = [v for v in dig(data, "task_result", "videos") or [] if isinstance(v, dict)]
        urls = [v["url"] for v in videos if isinstance(v.get("url"), str) and v["url"]]
        if not urls:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Kling task succeeded with no video")
        return PollResult(
            TaskStatus.SUCCEEDED,
            progress=100,
            outputs=(TaskOutput("video", "video/mp4", url=urls[0]),),  # no cover: first frame
            usage=usage(data),
        )

    # -- recover and probe ----------------------------------------------------------------------

    def recover_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest | None:
        # `{id}` may be the external_task_id: ours. Not found → TASK_GONE → failed, unbilled.
        url = join_url(ctx.base_url, f"v1/videos/{self.family(job)}/{job.task_id}")
        return UpstreamRequest("GET", url)

    def parse_recover(self, job: TaskJob, reply: UpstreamReply) -> Submitted | None:
        data = dig(reply.json(), "data")
        task_id = dig(data, "task_id")
        external = dig(data, "task_info", "external_task_id")
        if not isinstance(task_id, str) or not task_id or external not in (None, job.task_id):
            return None
        return Submitted(task_id, state={"family": self.family(job)})

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        url = join_url(ctx.base_url, "v1/videos/text2video", {"pageNum": 1, "pageSize": 1})
        return UpstreamRequest("GET", url)

    # -- auth and errors ------------------------------------------------------------------------

    def sign(self, ctx: CallContext, request: UpstreamRequest) -> UpstreamRequest:
        cred = ctx.credential
        if not isinstance(cred, KeyPair):
            return request  # Kling takes only an access/secret key pair: unsigned → 1001
        token = self._tokens.token(cred.access_key, cred.secret_key, ctx.now)
        return request.with_headers({"Authorization": f"Bearer {token}"})

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        return classify(reply)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def usage(data: Any) -> Usage:
    """What Kling reports: units deducted (`final_unit_deduction`, a string) and the video's
    duration (`"5.042"`). The resolution lives in `mode`, which the catalog prices by already."""
    return Usage(
        seconds=_number(dig(data, "task_result", "videos", 0, "duration")),
        credits=_number(dig(data, "final_unit_deduction")),
    )
