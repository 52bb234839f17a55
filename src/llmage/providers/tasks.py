"""What an asynchronous (task) provider offers: submit, poll, cancel. Translation only."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmage.domain.tasks import TaskStatus
from llmage.providers.contract import Channel


@dataclass(frozen=True, slots=True)
class MediaInput:
    """An input file held in our storage: a signed URL upstreams may fetch, and the bytes for
    upstreams that want base64 inline."""

    content_type: str
    url: str
    read: Callable[[], Awaitable[bytes]] = field(repr=False)


@dataclass(frozen=True, slots=True)
class TaskSubmission:
    kind: str  # "video" | "image"
    model: str  # upstream model name (channel mapping applied)
    params: Mapping[str, Any]  # validated, defaults filled; file slots removed (see media)
    media: Mapping[str, Sequence[MediaInput]]  # slot name -> files, in order
    llmid: str = ""


@dataclass(frozen=True, slots=True)
class TaskOutput:
    """One produced file: a URL to copy from (short-lived upstream URL) or the bytes."""

    kind: str  # "video" | "cover" | "image"
    content_type: str
    url: str | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class TaskPoll:
    status: TaskStatus  # PENDING | RUNNING | SUCCEEDED | FAILED
    progress: int | None = None
    outputs: Sequence[TaskOutput] = ()
    usage: Mapping[str, Any] = field(default_factory=dict)  # what the provider reports billing on
    error_code: str | None = None
    error_message: str | None = None
    poll_after: float | None = None  # seconds; the provider's own hint


class TaskProvider(Protocol):
    name: str

    async def submit(self, channel: Channel, job: TaskSubmission) -> str:
        """Start the job upstream; return the upstream task id. Raises UpstreamError."""

    async def poll(self, channel: Channel, upstream_id: str, job: TaskSubmission) -> TaskPoll:
        """Where the job is now. Raises UpstreamError on a failed poll (retried later)."""

    async def cancel(self, channel: Channel, upstream_id: str) -> bool:
        """Best effort; False where the upstream cannot cancel."""
