"""The DashScope task adapter: pure translation (PROVIDERS.md §2, contract in providers/tasks.py).

Base URL: the channel's (`https://dashscope.aliyuncs.com/api/v1`, `-intl` for Singapore, or a
workspace host); a bare host gets `/api/v1`, and the OpenAI-compatible `/compatible-mode/v1` of
the same host is read as `/api/v1`, so one address serves either way. Every request is signed
`Bearer <key>`; a create adds `X-DashScope-Async: enable` (DashScope refuses a synchronous call);
the channel option `workspace` adds `X-DashScope-WorkSpace`.

DashScope has no idempotency key and no field that carries our task id. A create whose outcome
is unknown is recovered from the task list, `GET /tasks?model_name=&start_time=&end_time=` (the
times in the account's wall clock, UTC+8 unless the channel option `list_utc_offset_minutes`
says otherwise): the task of that model created (`gmt_create`, exact milliseconds) first after
our create started, allowing a few seconds of clock skew. The list carries no prompt, so the
first poll of a recovered task compares the provider's `orig_prompt` with ours and refuses a
task that is not ours (TASK_GONE: refunded) rather than hand one user another's result.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urlsplit, urlunsplit

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.providers.dashscope.bodies import create_body, images_of
from llmage.providers.dashscope.errors import classify
from llmage.providers.dashscope.models import route
from llmage.providers.dashscope.replies import number, parse_task
from llmage.providers.tasks import (
    BaseTaskAdapter,
    CallContext,
    PollResult,
    Submitted,
    TaskJob,
    TaskRef,
)
from llmage.providers.wire import (
    UpstreamReply,
    UpstreamRequest,
    dig,
    join_url,
    json_request,
)

ASYNC_HEADER = {"X-DashScope-Async": "enable"}
# Our create started at T (our clock). The list is asked for [T - 10 min, T + 30 min]; a task
# created (upstream clock) in [T - 5 s, T + 5 min] may be ours: a few seconds of clock skew, and
# a create that reached the upstream late but within any sane create deadline.
_LIST_BEFORE_MS, _LIST_AFTER_MS = 10 * 60_000, 30 * 60_000
_SKEW_MS, _LATE_MS = 5_000, 5 * 60_000
_VERIFY = "verify_prompt"  # Submitted.state flag: check the prompt of a recovered task


def api_base(base_url: str) -> str:
    """The channel's address as DashScope's `/api/v1` root."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path.rstrip("/")
    if path in ("", "/"):
        path = "/api/v1"
    elif path.endswith("/compatible-mode/v1"):
        path = path.removesuffix("/compatible-mode/v1") + "/api/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _wall_clock(ms: int, offset_minutes: int) -> str:
    return datetime.fromtimestamp(ms / 1000 + offset_minutes * 60, tz=UTC).strftime("%Y%m%d%H%M%S")


class DashScopeAdapter(BaseTaskAdapter):
    name: ClassVar[str] = "dashscope"
    default_base_url: ClassVar[str] = "https://dashscope.aliyuncs.com/api/v1"
    # The SDK polls every 1 → 5 s; the account allows 20 task queries a second in all.
    poll_interval: ClassVar[float] = 5.0

    # -- submit ---------------------------------------------------------------------------------

    def needs_bytes(self, job: TaskJob) -> bool:
        return bool(images_of(job))  # images go inline as base64 unless `media_urls` is set

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        target = route(job, ctx.channel.options)
        body = create_body(job, target, ctx.channel.options)
        url = join_url(api_base(ctx.base_url), target.path)
        return json_request("POST", url, body, ASYNC_HEADER)

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        task_id = dig(reply.json(), "output", "task_id")
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Create reply has no output.task_id")
        return Submitted(task_id)

    # -- poll and cancel ------------------------------------------------------------------------

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        return UpstreamRequest("GET", join_url(api_base(ctx.base_url), f"tasks/{ref.upstream_id}"))

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        data = reply.json()
        if ref.state.get(_VERIFY):
            theirs = dig(data, "output", "orig_prompt")
            ours = str(ref.job.params.get("prompt") or "")
            if isinstance(theirs, str) and theirs != ours:
                return PollResult(
                    TaskStatus.FAILED,
                    error_kind=UpstreamKind.TASK_GONE,
                    error_code="recovered_task_mismatch",
                    error_message="The provider's task found after a lost create is not this one",
                )
        return parse_task(data, ref.job.kind)

    def cancel_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest | None:
        url = join_url(api_base(ctx.base_url), f"tasks/{ref.upstream_id}/cancel")
        return UpstreamRequest("POST", url)

    # -- recover and probe ----------------------------------------------------------------------

    def recover_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest | None:
        started = job.submitted_at_ms
        try:
            offset = int(ctx.option("list_utc_offset_minutes", 480))
        except (TypeError, ValueError):
            offset = 480  # a mistyped option must not stop recovery: Beijing time
        query = {
            "model_name": route(job, ctx.channel.options).model,
            "start_time": _wall_clock(started - _LIST_BEFORE_MS, offset),
            "end_time": _wall_clock(started + _LIST_AFTER_MS, offset),
            "page_no": 1,
            "page_size": 100,
        }
        return UpstreamRequest("GET", join_url(api_base(ctx.base_url), "tasks", query))

    def parse_recover(self, job: TaskJob, reply: UpstreamReply) -> Submitted | None:
        """The listed task (already filtered by model upstream) our create made: the first one
        created at or after our create started, else (clock skew) the last one just before.
        None when the window holds none: the create certainly made no task."""
        items = dig(reply.json(), "data")
        started = job.submitted_at_ms
        after: list[tuple[float, str]] = []
        before: list[tuple[float, str]] = []
        for item in items if isinstance(items, list) else []:
            created = number(dig(item, "gmt_create"))
            task_id = dig(item, "task_id")
            if created is None or not isinstance(task_id, str) or not task_id:
                continue
            if task_id in job.claimed:
                continue  # another task of ours owns it
            if started <= created <= started + _LATE_MS:
                after.append((created, task_id))
            elif started - _SKEW_MS <= created < started:
                before.append((created, task_id))
        if after:
            return Submitted(min(after)[1], state={_VERIFY: "1"})
        if before:
            return Submitted(max(before)[1], state={_VERIFY: "1"})
        return None

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        query = {"page_no": 1, "page_size": 1}
        return UpstreamRequest("GET", join_url(api_base(ctx.base_url), "tasks", query))

    # -- sign and classify ----------------------------------------------------------------------

    def sign(self, ctx: CallContext, request: UpstreamRequest) -> UpstreamRequest:
        signed = super().sign(ctx, request)
        workspace = ctx.option("workspace")
        if workspace:
            signed = signed.with_headers({"X-DashScope-WorkSpace": str(workspace)})
        return signed

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        return classify(reply)
