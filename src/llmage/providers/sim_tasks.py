"""The `sim` task adapter: pure translation to the in-process sim media server (sim_media.py).

It is written like any real adapter (build, parse, classify; no IO), so the poller, the executor,
the media re-hosting and the billing run exactly the same code for `sim` as for a real upstream.
The sim server speaks its own words (queued, running, succeeded, failed, cancelled); this adapter
maps them to ours, as every adapter must.
"""

from __future__ import annotations

from typing import Any, ClassVar

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
from llmage.providers.wire import UpstreamReply, UpstreamRequest, dig, join_url, json_request

_STATUS = {
    "queued": TaskStatus.PENDING,
    "running": TaskStatus.RUNNING,
    "succeeded": TaskStatus.SUCCEEDED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.FAILED,
}
_OPTIONS = (
    "latency_ms",
    "failure_rate",
    "failure_message",
    "submit_failure_rate",
    "gate_file",
)


def _body(ctx: CallContext, job: TaskJob) -> dict[str, Any]:
    return {
        "kind": job.mode or job.kind,
        "params": dict(job.params),
        "options": {k: ctx.channel.options[k] for k in _OPTIONS if k in ctx.channel.options},
    }


class SimTaskAdapter(BaseTaskAdapter):
    name: ClassVar[str] = "sim"
    default_base_url: ClassVar[str] = "sim://media"
    poll_interval: ClassVar[float] = 0.0  # it hints the next poll itself

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        return json_request("POST", join_url(ctx.base_url, "tasks"), _body(ctx, job))

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        upstream_id = dig(reply.json(), "id")
        if not isinstance(upstream_id, str) or not upstream_id:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "sim: create reply has no id")
        return Submitted(upstream_id)

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        url = join_url(ctx.base_url, f"tasks/{ref.upstream_id}/query")
        return json_request("POST", url, _body(ctx, ref.job))

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        data = reply.json()
        word = str(dig(data, "status") or "")
        status = _STATUS.get(word)
        hint = dig(data, "poll_after")
        poll_after = float(hint) if isinstance(hint, int | float) else None
        if status is None:
            # An undocumented word: still running; the gateway deadline ends it if need be.
            return PollResult(TaskStatus.RUNNING, poll_after=poll_after)
        if status is TaskStatus.FAILED:
            cancelled = word == "cancelled"
            return PollResult(
                TaskStatus.FAILED,
                error_kind=UpstreamKind.RETRYABLE,
                error_code="cancelled" if cancelled else str(dig(data, "error", "code") or "sim"),
                error_message=(
                    "sim: cancelled"
                    if cancelled
                    else str(dig(data, "error", "message") or "sim: the job failed")
                ),
            )
        if status is not TaskStatus.SUCCEEDED:
            progress = dig(data, "progress")
            return PollResult(
                status,
                progress=progress if isinstance(progress, int) else None,
                poll_after=poll_after,
            )
        outputs = [
            TaskOutput(
                kind=str(o["kind"]),
                content_type=str(o["content_type"]),
                # Relative: the executor joins it to the channel's base URL (sim://media).
                fetch=UpstreamRequest("GET", str(o["url"])),
            )
            for o in dig(data, "outputs") or []
            if isinstance(o, dict) and {"kind", "content_type", "url"} <= o.keys()
        ]
        usage = dig(data, "usage") or {}
        return PollResult(
            TaskStatus.SUCCEEDED,
            progress=100,
            outputs=outputs,
            usage=Usage(
                seconds=usage.get("seconds"),
                resolution=usage.get("resolution"),
                width=usage.get("width"),
                height=usage.get("height"),
                images=usage.get("images"),
            ),
        )

    def cancel_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest | None:
        return json_request("POST", join_url(ctx.base_url, f"tasks/{ref.upstream_id}/cancel"), {})

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        return UpstreamRequest("GET", join_url(ctx.base_url, "tasks"))

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        return None if reply.ok else self._error(reply)

    @staticmethod
    def _error(reply: UpstreamReply) -> UpstreamError:
        data = reply.json_or_none()
        code = str(dig(data, "error", "code") or "")
        message = str(dig(data, "error", "message") or f"sim: HTTP {reply.status}")
        kind = {
            400: UpstreamKind.BAD_REQUEST,
            404: UpstreamKind.TASK_GONE,
            429: UpstreamKind.RATE_LIMITED,
            # The sim's 503 (injected failure, no renderer) guarantees nothing was created, so
            # a create may be retried: unlike a real upstream's 5xx, whose outcome is unknown.
            503: UpstreamKind.RATE_LIMITED,
        }.get(reply.status, UpstreamKind.RETRYABLE)
        return UpstreamError(kind, message, upstream_status=reply.status, upstream_code=code)
