"""Tasks: the status machine and how each dialect spells a status.

CREATED → SUBMITTING → PENDING → RUNNING → SUCCEEDED | FAILED | CANCELLED. A task may skip forward
(a provider can answer "done" to the first poll) but never moves back, and a terminal status is
final. SUBMITTING is internal: it is set, under the task's lease, before the upstream create, so a
create whose outcome is unknown (timeout, crash, lost reply) is recovered, never repeated. Clients
see it as PENDING (`public`), never under its own name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from llmage.domain.stored_files import TaskFiles


class TaskStatus(StrEnum):
    CREATED = "CREATED"
    SUBMITTING = "SUBMITTING"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def public(self) -> TaskStatus:
        """The status a client may see: SUBMITTING reads as PENDING (queued upstream-side)."""
        return TaskStatus.PENDING if self is TaskStatus.SUBMITTING else self


_TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})
_RANK = {
    TaskStatus.CREATED: 0,
    TaskStatus.SUBMITTING: 1,
    TaskStatus.PENDING: 2,
    TaskStatus.RUNNING: 3,
    TaskStatus.SUCCEEDED: 4,
    TaskStatus.FAILED: 4,
    TaskStatus.CANCELLED: 4,
}
# The seed's `usage.type` for each catalog kind.
ACTION_TYPE = {
    "t2v": "text2video",
    "i2v": "image2video",
    "r2v": "reference2video",
    "t2i": "text2image",
    "i2i": "image2image",
}
OPEN_STATUSES = (
    TaskStatus.CREATED,
    TaskStatus.SUBMITTING,
    TaskStatus.PENDING,
    TaskStatus.RUNNING,
)


def can_move(current: TaskStatus, new: TaskStatus) -> bool:
    """Forward only; staying put is allowed (progress updates) until the task is terminal."""
    return not current.terminal and _RANK[new] >= _RANK[current]


def openai_status(status: TaskStatus) -> str:
    """OpenAI videos: queued | in_progress | completed | failed (a cancel reads as failed)."""
    return {
        TaskStatus.CREATED: "queued",
        TaskStatus.SUBMITTING: "queued",
        TaskStatus.PENDING: "queued",
        TaskStatus.RUNNING: "in_progress",
        TaskStatus.SUCCEEDED: "completed",
    }.get(status, "failed")


def newapi_status(status: TaskStatus) -> str:
    """new-api `video.generation.job`: queued | in_progress | completed | failed | cancelled."""
    return {
        TaskStatus.CREATED: "queued",
        TaskStatus.SUBMITTING: "queued",
        TaskStatus.PENDING: "queued",
        TaskStatus.RUNNING: "in_progress",
        TaskStatus.SUCCEEDED: "completed",
        TaskStatus.CANCELLED: "cancelled",
    }.get(status, "failed")


# Upstream spellings seen across providers (PROVIDERS.md §0), folded into ours. Anything not
# listed is treated as still running: an unknown word must never leak to a client or end a task.
UPSTREAM_STATUS: dict[str, TaskStatus] = {
    **dict.fromkeys(
        ("pending", "queued", "created", "queueing", "submitted", "in_queue", "waiting"),
        TaskStatus.PENDING,
    ),
    **dict.fromkeys(("running", "processing", "generating", "in_progress"), TaskStatus.RUNNING),
    **dict.fromkeys(("succeeded", "success", "succeed", "done", "completed"), TaskStatus.SUCCEEDED),
    **dict.fromkeys(
        ("failed", "failure", "canceled", "cancelled", "expired", "not_found", "unknown", "error"),
        TaskStatus.FAILED,
    ),
}


def fold_upstream_status(word: str) -> TaskStatus:
    return UPSTREAM_STATUS.get(word.strip().lower(), TaskStatus.RUNNING)


@dataclass(slots=True)
class MediaSource:
    """An input file as the client gave it: uploaded bytes, a URL, or a data URI/base64 string
    (the dialect decodes those to bytes). Fetching a URL is the media service's job."""

    data: bytes | None = None
    url: str | None = None
    filename: str | None = None
    content_type: str | None = None


@dataclass(slots=True)
class TaskDraft:
    """A submit, canonical across dialects. `raw` holds the model parameters as sent, with file
    slots already renamed to the catalog's canonical names and holding MediaSource values."""

    kind: str  # "video" | "image"
    raw: dict[str, Any]
    model: str | None = None  # a model name or an llmid (OpenAI-style routes)
    llmid: str | None = None  # native routes
    platform: str | None = None
    callback_url: str | None = None
    remix_of: str | None = None
    extra: dict[str, Any] = field(
        default_factory=dict
    )  # vendor pass-through (metadata, extra_body)


@dataclass(frozen=True, slots=True)
class TaskRow:
    """A stored task as every layer reads it (the database row, decoded): what dialects render,
    services move and the poller settles."""

    id: str
    user_id: int
    key_id: int | None
    kind: str
    llmid: str
    model: str
    dialect: str
    platform: str | None
    status: TaskStatus
    progress: int
    params: dict[str, Any]  # plain JSON as the client sent it: never a source of media links
    inputs: TaskFiles  # the files we stored for this task's file parameters
    channel_id: int | None
    provider: str | None
    upstream_id: str | None
    key_index: int  # which key of a pool the task was submitted with (polls use it too)
    upstream_state: dict[str, str]  # what the adapter needs to poll it (e.g. Jimeng req_key)
    hold_id: str
    quoted: int
    charged: int | None
    usage: dict[str, Any] | None
    outputs: TaskFiles  # the results we re-hosted (video, cover, images); empty until then
    error_code: str | None
    error_message: str | None
    idempotency_key: str | None
    request_hash: str | None
    callback_url: str | None
    remix_of: str | None
    created_at: int
    updated_at: int
    finished_at: int | None
    deadline_at: int
    next_poll_at: int
    polls: int
    deleted_at: int | None
    media_expired_at: int | None = None  # retention deleted its stored files
