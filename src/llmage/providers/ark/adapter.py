"""Volcengine Ark (Doubao Seedance, Seedream): pure translation, PROVIDERS.md §3.

Video: `POST /contents/generations/tasks` (JSON, see request.py) → `{"id": "cgt-…"}`; poll
`GET /contents/generations/tasks/{id}`; statuses queued | running | succeeded | failed |
cancelled | expired, all mapped; an unknown word stays in progress (logged). The result is
`content.video_url` (24 h, re-hosted at once); Ark gives no cover (`last_frame_url` is the LAST
frame), so the gateway cuts one from the first frame. Usage is what Ark bills: `total_tokens`,
and the `duration` / `resolution` / `ratio` it actually made (2.0 may choose the length).

Exactly once: Ark has no idempotency field and its SDK retries POST — we never do. A create of
unknown outcome is looked up in `GET …/tasks?filter.model=…` (all statuses: by the time we look,
a fast task may be finished) and matched on creation time (not before our create started),
the echoed resolution / ratio / duration, and not being owned by another of our tasks; only a
single match is taken (the list carries no prompt, so two unknown tasks of one shape are
indistinguishable: the task then fails unbilled rather than take another's result). One page is
read (the model's 100 newest): an account making more than that between our create and the
lookup would hide the task, which then fails unbilled. Cancel: `DELETE …/tasks/{id}` (works on
queued tasks only; on a finished task it deletes the record, so it is sent only for a cancel).

Images (Seedream): `POST /images/generations` is synchronous: the create answers with the
images (`response_format: url`, valid 24 h: a few 4K images as base64 would outgrow a JSON
reply), so submit completes the task (`Submitted.result`); usage is `generated_images`. A lost
image create cannot be looked up: the task fails unbilled.

Channel options: `reference_model` (where reference-to-video goes for a model without that
mode, e.g. Seedance 1.5 pro; default Seedance 2.0 of the platform), `response_format` for
images (`url` | `b64_json`).
"""

from __future__ import annotations

import base64
import binascii
import logging
from typing import Any, ClassVar

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.ark.errors import classify, error_fields, moderation_kind
from llmage.providers.ark.request import expected_echo, image_body, video_plan
from llmage.providers.tasks import (
    BaseTaskAdapter,
    CallContext,
    PollResult,
    Submitted,
    TaskJob,
    TaskOutput,
    TaskRef,
)
from llmage.providers.wire import UpstreamReply, UpstreamRequest, dig, join_url, json_request

log = logging.getLogger(__name__)

TASKS = "contents/generations/tasks"
IMAGES = "images/generations"
_STATUS = {
    "queued": TaskStatus.PENDING,
    "running": TaskStatus.RUNNING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.FAILED,
    "expired": TaskStatus.FAILED,
}
_ENDED = {
    "cancelled": "The provider cancelled the task before it ran",
    "expired": "The task expired in the provider's queue before it ran",
}
_RECOVER_SKEW = 5  # seconds of clock difference allowed between us and the upstream
_LIST_PAGE = 100


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == int(number) else None


def _echoes(got: Any, want: Any) -> bool:
    """An echoed field agrees with what we sent (a missing echo does not disagree)."""
    if got is None:
        return True
    if isinstance(want, int):
        return _number(got) == want
    return str(got).lower() == str(want).lower()


class ArkAdapter(BaseTaskAdapter):
    name: ClassVar[str] = "ark"
    default_base_url: ClassVar[str] = "https://ark.cn-beijing.volces.com/api/v3"
    poll_interval: ClassVar[float] = 5.0
    # Where reference-to-video goes when the requested model has no reference mode.
    reference_model: ClassVar[str] = "doubao-seedance-2-0-260128"
    # What a 403 without a more precise code means on this platform.
    forbidden: ClassVar[UpstreamKind] = UpstreamKind.AUTH

    # -- submit ---------------------------------------------------------------------------------

    def _reference_model(self, ctx: CallContext) -> str:
        return str(ctx.option("reference_model") or self.reference_model)

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        model_map = ctx.channel.model_map
        if job.kind == "image":
            fmt = str(ctx.option("response_format") or "url")
            body = image_body(job, model_map, fmt)
            return json_request("POST", join_url(ctx.base_url, IMAGES), body)
        plan = video_plan(job, model_map, self._reference_model(ctx))
        return json_request("POST", join_url(ctx.base_url, TASKS), plan.body)

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        data = reply.json()
        if job.kind == "image":
            return Submitted(f"img-{job.task_id}", result=self._images(data))
        task_id = dig(data, "id")
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Task create reply has no id")
        return Submitted(task_id)

    @staticmethod
    def _images(data: Any) -> PollResult:
        outputs: list[TaskOutput] = []
        failures: list[tuple[str, str]] = []
        for item in dig(data, "data") or []:
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("url"), str) and item["url"]:
                outputs.append(TaskOutput("image", "image/jpeg", url=item["url"]))
            elif isinstance(item.get("b64_json"), str):
                try:
                    raw = base64.b64decode(item["b64_json"], validate=True)
                except (binascii.Error, ValueError):
                    raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Image is not base64") from None
                outputs.append(TaskOutput("image", "image/jpeg", data=raw))
            elif isinstance(item.get("error"), dict):
                failures.append(error_fields(item))
        if not outputs:
            code, message = failures[0] if failures else error_fields(data)
            return PollResult(
                TaskStatus.FAILED,
                error_kind=moderation_kind(code),
                error_code=code or "no_image",
                error_message=message or "The provider made no image",
            )
        made = _int(dig(data, "usage", "generated_images"))
        tokens = _int(dig(data, "usage", "total_tokens"))
        return PollResult(
            TaskStatus.SUCCEEDED,
            progress=100,
            outputs=outputs,
            usage=Usage(images=made if made else len(outputs), tokens=tokens),
        )

    # -- poll -----------------------------------------------------------------------------------

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        return UpstreamRequest("GET", join_url(ctx.base_url, f"{TASKS}/{ref.upstream_id}"))

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        return self.task_result(reply.json())

    @staticmethod
    def task_result(data: Any) -> PollResult:
        word = str(dig(data, "status") or "")
        status = _STATUS.get(word)
        if status is None:
            log.warning("ark task %s: undocumented status %r; still running", dig(data, "id"), word)
            return PollResult(TaskStatus.RUNNING)
        if status is TaskStatus.FAILED:
            code, message = error_fields(data)
            return PollResult(
                TaskStatus.FAILED,
                error_kind=moderation_kind(code),
                error_code=code or word,
                error_message=message or _ENDED.get(word) or "The video generation failed",
            )
        if status is not TaskStatus.SUCCEEDED:
            return PollResult(status, progress=0 if status is TaskStatus.PENDING else None)
        url = dig(data, "content", "video_url")
        if not isinstance(url, str) or not url:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Succeeded task has no video_url")
        seconds = _number(dig(data, "duration"))
        resolution = dig(data, "resolution")
        ratio = dig(data, "ratio")
        return PollResult(
            TaskStatus.SUCCEEDED,
            progress=100,
            outputs=(TaskOutput("video", "video/mp4", url=url),),
            usage=Usage(
                seconds=seconds if seconds is not None and seconds > 0 else None,
                resolution=str(resolution).lower() if isinstance(resolution, str) else None,
                ratio=ratio if isinstance(ratio, str) else None,
                tokens=_int(dig(data, "usage", "total_tokens")),
            ),
        )

    # -- cancel, recover, probe -----------------------------------------------------------------

    def cancel_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest | None:
        if ref.job.kind == "image":
            return None
        return UpstreamRequest("DELETE", join_url(ctx.base_url, f"{TASKS}/{ref.upstream_id}"))

    def recover_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest | None:
        if job.kind == "image":
            return None  # synchronous: nothing upstream to find afterwards
        plan = video_plan(job, ctx.channel.model_map, self._reference_model(ctx))
        # No status filter: by the time we look, a fast task may already have finished.
        query = {"page_num": 1, "page_size": _LIST_PAGE, "filter.model": plan.model}
        return UpstreamRequest("GET", join_url(ctx.base_url, TASKS, query))

    def parse_recover(self, job: TaskJob, reply: UpstreamReply) -> Submitted | None:
        """The task our lost create made: in the model's list (the upstream filtered it),
        created at or after our create started (a few seconds of skew allowed), echoing the
        resolution, ratio and duration we asked for, and owned by none of our other tasks.
        Only a single such task is ours for certain: with none, or several (another create
        of the same shape that we do not know), nothing is recovered rather than guessed."""
        since = job.submitted_at_ms / 1000 - _RECOVER_SKEW
        expect = expected_echo(job)
        found = [
            str(item["id"])
            for item in dig(reply.json(), "items") or []
            if isinstance(item, dict)
            and isinstance(item.get("id"), str)
            and item["id"] not in job.claimed
            and (created := _number(item.get("created_at"))) is not None
            and created >= since
            and all(_echoes(item.get(k), v) for k, v in expect.items())
        ]
        if len(found) > 1:
            log.warning("ark recovery of task %s: %d tasks could be ours", job.task_id, len(found))
        return Submitted(found[0]) if len(found) == 1 else None

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        query = {"page_num": 1, "page_size": 1}
        return UpstreamRequest("GET", join_url(ctx.base_url, TASKS, query))

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        return classify(reply, forbidden=self.forbidden)
