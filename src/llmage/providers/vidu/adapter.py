"""Vidu (api.vidu.cn / api.vidu.com): pure translation, PROVIDERS.md §5.

Auth is `Authorization: Token <key>` (not Bearer). Create: `POST /ent/v2/{text2video |
img2video | start-end2video | reference2video}` (body.py), answered with the task's `task_id`
and `state: created`. Poll: `GET /ent/v2/tasks/{id}/creations` → `{state, err_code, credits,
payload, off_peak, creations: [{url, cover_url, watermarked_url?, video?}]}`; states created |
queueing (PENDING), processing (RUNNING), success, failed; anything else is logged and polled
on. Usage is what Vidu bills: the query reply's `credits` (the catalog prices them), with the
off-peak flag and, where the reply says, the video's length and size. The cover is Vidu's own
`cover_url`. Both URLs live 24 hours: the media service copies them at once.

No idempotency key exists, but our task id rides in `payload` and is echoed: a create of unknown
outcome is found again in `GET /ent/v2/tasks` (the window around the create, newest 100) by
that payload. Cancel: `POST /ent/v2/tasks/{id}/cancel` (only before Vidu schedules the task).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any, ClassVar

from llmage.domain.credentials import ApiKey
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.tasks import (
    BaseTaskAdapter,
    CallContext,
    PollResult,
    Submitted,
    TaskJob,
    TaskOutput,
    TaskRef,
)
from llmage.providers.vidu.body import create_body
from llmage.providers.vidu.errors import classify, failure
from llmage.providers.wire import UpstreamReply, UpstreamRequest, dig, join_url, json_request

log = logging.getLogger(__name__)

STATES = {
    "created": TaskStatus.PENDING,
    "queueing": TaskStatus.PENDING,
    "processing": TaskStatus.RUNNING,
    "success": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
}
_TIERS = {360: "360p", 540: "540p", 720: "720p", 1080: "1080p"}
_LIST_PAGE = 100
# The recovery window around our create: Vidu's clock may differ from ours, and a create taken
# late (a slow upstream) is still stamped by Vidu within the create's own deadline.
_RECOVER_BEFORE_S = 60
_RECOVER_AFTER_S = 900


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _whole(value: float) -> float:
    """Integral numbers stay integers in the usage record (seed 001 shows `"credits": 10`)."""
    return int(value) if value.is_integer() else value


def tier(width: Any, height: Any) -> str | None:
    """The resolution tier of a `width x height` video (its short side), if a known one."""
    w, h = _number(width), _number(height)
    if not w or not h:
        return None
    short = min(w, h)
    best = min(_TIERS, key=lambda t: abs(t - short))
    return _TIERS[best] if abs(best - short) <= 0.05 * best else None


def usage(data: Any) -> Usage:
    """What Vidu reports it made and billed. Credits are the billing truth; a success that
    reports none (0: e.g. a subscription package) is priced from the request instead."""
    credits = _number(dig(data, "credits"))
    off_peak = dig(data, "off_peak")
    video = dig(data, "creations", 0, "video")
    seconds = _number(dig(video, "duration"))
    width = _number(dig(video, "resolution", "width"))
    height = _number(dig(video, "resolution", "height"))
    return Usage(
        credits=_whole(credits) if credits is not None and credits > 0 else None,
        off_peak=off_peak if isinstance(off_peak, bool) else None,
        # Vidu's clip runs a few frames over the whole seconds it was asked for and billed.
        seconds=round(seconds) if seconds is not None and seconds >= 0.5 else None,
        width=int(width) if width else None,
        height=int(height) if height else None,
        resolution=tier(width, height),
    )


class ViduAdapter(BaseTaskAdapter):
    name: ClassVar[str] = "vidu"
    default_base_url: ClassVar[str] = "https://api.vidu.cn"
    poll_interval: ClassVar[float] = 5.0

    def sign(self, ctx: CallContext, request: UpstreamRequest) -> UpstreamRequest:
        if isinstance(ctx.credential, ApiKey):
            return request.with_headers({"Authorization": f"Token {ctx.credential.key}"})
        return request

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        return classify(reply)

    # -- submit ---------------------------------------------------------------------------------

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        path, body = create_body(job)
        return json_request("POST", join_url(ctx.base_url, f"ent/v2/{path}"), body)

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        data = reply.json()
        task_id = dig(data, "task_id")
        if not isinstance(task_id, str | int) or isinstance(task_id, bool) or task_id == "":
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Vidu's create reply has no task_id")
        return Submitted(str(task_id))

    # -- poll -----------------------------------------------------------------------------------

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        url = join_url(ctx.base_url, f"ent/v2/tasks/{ref.upstream_id}/creations")
        return UpstreamRequest("GET", url, {"Accept": "application/json"})

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        data = reply.json()
        word = dig(data, "state")
        status = STATES.get(word) if isinstance(word, str) else None
        if status is None:
            log.warning("vidu task %s: undocumented state %r; still polling", ref.upstream_id, word)
            return PollResult(TaskStatus.RUNNING)
        if status is TaskStatus.FAILED:
            err = dig(data, "err_code")
            kind, code, message = failure(str(err) if isinstance(err, str) and err else None)
            return PollResult(
                TaskStatus.FAILED, error_kind=kind, error_code=code, error_message=message
            )
        if status is not TaskStatus.SUCCEEDED:
            return PollResult(status)
        return PollResult(
            TaskStatus.SUCCEEDED, progress=100, outputs=self._outputs(ref, data), usage=usage(data)
        )

    @staticmethod
    def _outputs(ref: TaskRef, data: Any) -> list[TaskOutput]:
        creation = dig(data, "creations", 0)
        url = dig(creation, "url")
        watermarked = dig(creation, "watermarked_url")
        wanted = str(ref.job.params.get("watermark", "")).lower() in ("true", "1", "y", "yes")
        if wanted and isinstance(watermarked, str) and watermarked:
            url = watermarked  # the caller asked for Vidu's watermark
        if not isinstance(url, str) or not url:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Vidu reported success with no video")
        outputs = [TaskOutput("video", "video/mp4", url=url)]
        cover = dig(creation, "cover_url")
        if isinstance(cover, str) and cover:
            outputs.append(TaskOutput("cover", "image/jpeg", url=cover))
        return outputs  # no cover: the gateway cuts the first frame

    # -- cancel, recover, probe -----------------------------------------------------------------

    def cancel_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest | None:
        url = join_url(ctx.base_url, f"ent/v2/tasks/{ref.upstream_id}/cancel")
        return json_request("POST", url, {"id": ref.upstream_id})

    def recover_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest | None:
        started = job.submitted_at_ms / 1000
        query = {
            "created_at.from": _iso(started - _RECOVER_BEFORE_S),
            "created_at.to": _iso(started + _RECOVER_AFTER_S),
            "pager.pagesz": _LIST_PAGE,
        }
        return UpstreamRequest("GET", join_url(ctx.base_url, "ent/v2/tasks", query))

    def parse_recover(self, job: TaskJob, reply: UpstreamReply) -> Submitted | None:
        """The task whose echoed `payload` is our task id; None when the list (all of the
        window, one page) certainly has none."""
        data = reply.json()
        tasks = dig(data, "tasks")
        for task in tasks if isinstance(tasks, list) else []:
            if dig(task, "payload") == job.task_id and isinstance(dig(task, "id"), str | int):
                return Submitted(str(task["id"]))
        if dig(data, "next_page_token"):
            # More tasks were created in the window than one page holds: ours is not on the
            # first page. Without certainty the task fails unbilled, as for a provider with
            # no recovery at all (never resubmitted).
            log.warning("vidu recovery of task %s: not on the first page of the list", job.task_id)
        return None

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        return UpstreamRequest("GET", join_url(ctx.base_url, "ent/v2/tasks", {"pager.pagesz": 1}))
