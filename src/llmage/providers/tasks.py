"""The task-provider contract: an adapter is pure translation (DESIGN §3).

For each operation an adapter BUILDS an `UpstreamRequest` from typed values and PARSES the
`UpstreamReply`; it never performs IO, never reads a clock of its own (`CallContext.now`), never
touches money or the database. The shared executor (providers/executor.py) sends every request
through the one transport, in this order for each call:

    build → sign → send → classify (an error reply becomes an UpstreamError of one kind) → parse

Operations (see TaskAdapter):
  submit    create the upstream task; our task id travels upstream where the provider has a
            field for it (Kling `external_task_id`, Vidu `payload`, ...)
  poll      where the task is: PENDING | RUNNING | SUCCEEDED | FAILED (ours only, never the
            provider's words) plus outputs, typed Usage and a poll-after hint
  cancel    optional, best effort
  recover   optional: after a create whose outcome is unknown, find the task upstream (list,
            echoed id, external id) — `None` from parse means "certainly not created"
  probe     optional: a cheap authenticated call for `llmage channel test`
  download  an output behind the channel's auth (OpenAI `/videos/{id}/content`) is a
            TaskOutput with `fetch` set; plain public URLs are copied by the media service

An adapter is one folder `providers/<name>/` and one line in providers/registry.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from llmage.domain.credentials import ApiKey, Credential
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.contract import Channel
from llmage.providers.wire import UpstreamReply, UpstreamRequest

__all__ = [
    "BaseTaskAdapter",
    "CallContext",
    "MediaInput",
    "PollResult",
    "Submitted",
    "TaskAdapter",
    "TaskJob",
    "TaskOutput",
    "TaskRef",
    "classify_http",
]


@dataclass(frozen=True, slots=True)
class MediaInput:
    """An input file held in our storage: a signed URL upstreams may fetch, and the bytes for
    upstreams that want base64 inline or a multipart file."""

    content_type: str
    url: str
    read: Callable[[], Awaitable[bytes]] = field(repr=False)
    data: bytes | None = field(default=None, repr=False)  # filled by the executor when needed


@dataclass(frozen=True, slots=True)
class TaskJob:
    """One generation job, typed and validated (catalog schema applied, defaults filled)."""

    task_id: str  # OUR public task id: put it upstream wherever the provider can carry it
    kind: str  # "video" | "image"
    mode: str  # catalog kind: t2v | i2v | r2v | t2i | i2i
    model: str  # upstream model name (the channel's model_map applied)
    params: Mapping[str, Any]  # validated parameters; file slots removed (see `media`)
    media: Mapping[str, Sequence[MediaInput]]  # slot name -> files, in order
    llmid: str = ""
    submitted_at_ms: int = 0  # when our create started (recover looks from there)
    # Recover only: upstream ids other tasks of ours on this channel already own. None of them
    # can be the one our lost create made, whatever it echoes.
    claimed: frozenset[str] = frozenset()

    def files(self, slot: str) -> Sequence[MediaInput]:
        return self.media.get(slot, ())


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a build/sign step may read besides the job: the channel (base URL, options), the one
    credential this call is signed with, and the time (JWT expiry, V4 `X-Date`)."""

    channel: Channel
    credential: Credential | None
    now: float  # unix seconds
    base_url: str  # the channel's, else the adapter's default host

    def option(self, name: str, default: Any = None) -> Any:
        return self.channel.options.get(name, default)


@dataclass(frozen=True, slots=True)
class Submitted:
    """The upstream's id for the task, plus whatever the adapter needs to poll it later (Jimeng's
    `req_key`, Kling's endpoint family): small strings, stored with the task."""

    upstream_id: str
    state: Mapping[str, str] = field(default_factory=dict)
    # A synchronous upstream (OpenAI images) answers the create with the result itself.
    result: PollResult | None = None


@dataclass(frozen=True, slots=True)
class TaskRef:
    """A created upstream task, as stored: what poll and cancel are built from."""

    upstream_id: str
    state: Mapping[str, str]
    job: TaskJob


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """One produced file: bytes, a (short-lived, public) URL the media service copies through the
    guarded fetcher, or an authenticated `fetch` the executor runs with the channel's signature
    (a `fetch` URL without a scheme is joined to the channel's base URL: parse steps have no
    context)."""

    kind: str  # "video" | "cover" | "image"
    content_type: str
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    fetch: UpstreamRequest | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    status: TaskStatus  # PENDING | RUNNING | SUCCEEDED | FAILED: ours, never the upstream's word
    progress: int | None = None
    outputs: Sequence[TaskOutput] = ()
    usage: Usage = field(default_factory=Usage)
    error_kind: UpstreamKind | None = None  # FAILED: why (OUTPUT_MODERATION, TASK_GONE, ...)
    error_code: str | None = None  # the provider's code, verbatim
    error_message: str | None = None  # always set on FAILED (generic if upstream gave none)
    poll_after: float | None = None  # seconds; the provider's own hint


class TaskAdapter(Protocol):
    """Pure translation for one upstream protocol. Implement by subclassing BaseTaskAdapter."""

    name: ClassVar[str]
    default_base_url: ClassVar[str]
    poll_interval: ClassVar[float]  # seconds between polls (per-provider limit, PROVIDERS §1.6)

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest: ...
    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted: ...
    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest: ...
    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult: ...
    def cancel_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest | None: ...
    def recover_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest | None: ...
    def parse_recover(self, job: TaskJob, reply: UpstreamReply) -> Submitted | None: ...
    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None: ...
    def sign(self, ctx: CallContext, request: UpstreamRequest) -> UpstreamRequest: ...
    def classify(self, reply: UpstreamReply) -> UpstreamError | None: ...
    def needs_bytes(self, job: TaskJob) -> bool: ...


def classify_http(reply: UpstreamReply, message: str | None = None) -> UpstreamError:
    """A generic reading of an error status, for providers whose body codes say no more."""
    status = reply.status
    msg = message or f"Upstream error {status}"
    kind = UpstreamKind.UPSTREAM_BUG
    if status in (401, 403):
        kind = UpstreamKind.AUTH
    elif status == 402:
        kind = UpstreamKind.QUOTA
    elif status == 404:
        kind = UpstreamKind.TASK_GONE
    elif status in (408, 500, 502, 503, 504):
        kind = UpstreamKind.RETRYABLE
    elif status == 429:
        kind = UpstreamKind.RATE_LIMITED
    elif status in (400, 413, 415, 422):
        kind = UpstreamKind.BAD_REQUEST
    return UpstreamError(kind, msg, upstream_status=status, retry_after=reply.retry_after())


class BaseTaskAdapter:
    """Defaults: Bearer signing with the channel's key, HTTP-status classification, no cancel,
    no recovery, URLs or inline bytes as the job's media. Override what your provider does."""

    name: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    poll_interval: ClassVar[float] = 5.0

    def submit_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest:
        raise NotImplementedError

    def parse_submit(self, job: TaskJob, reply: UpstreamReply) -> Submitted:
        raise NotImplementedError

    def poll_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest:
        raise NotImplementedError

    def parse_poll(self, ref: TaskRef, reply: UpstreamReply) -> PollResult:
        raise NotImplementedError

    def cancel_request(self, ctx: CallContext, ref: TaskRef) -> UpstreamRequest | None:
        return None

    def recover_request(self, ctx: CallContext, job: TaskJob) -> UpstreamRequest | None:
        return None

    def parse_recover(self, job: TaskJob, reply: UpstreamReply) -> Submitted | None:
        return None

    def probe_request(self, ctx: CallContext) -> UpstreamRequest | None:
        """A cheap call that proves the credential works (`llmage channel test`): a GET of a
        list or of an unknown task, never a create. None: the provider has none."""
        return None

    def sign(self, ctx: CallContext, request: UpstreamRequest) -> UpstreamRequest:
        if isinstance(ctx.credential, ApiKey):
            return request.with_headers({"Authorization": f"Bearer {ctx.credential.key}"})
        return request

    def classify(self, reply: UpstreamReply) -> UpstreamError | None:
        """None when the reply is a success to parse; else the error, of one kind."""
        return None if reply.ok else classify_http(reply)

    def needs_bytes(self, job: TaskJob) -> bool:
        """True when submit_request reads MediaInput.data (multipart files, inline base64):
        the executor then loads the bytes from storage first (builds stay pure)."""
        return False
