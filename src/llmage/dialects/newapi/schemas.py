"""new-api style wire shapes (seeds 002, 004), for /openapi.json only (handlers build dicts);
the contract tests check every answer against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class NewApiError(BaseModel):
    """Seed 004's error, at the top level."""

    code: str | None
    message: str
    param: str | None
    type: str


class JobError(BaseModel):
    code: str
    message: str | None


class JobMetadata(BaseModel):
    url: str | None
    cover_url: str | None


class Job(BaseModel):
    """`video.generation.job`: the submit answer; GET adds the fields after `created_at`."""

    id: str
    task_id: str
    object: Literal["video.generation.job"]
    model: str
    status: Literal["queued", "in_progress", "completed", "failed", "cancelled"]
    progress: int
    created_at: int
    completed_at: int | None = None
    video_url: str | None = None
    url: str | None = None
    metadata: JobMetadata | None = None
    usage: dict[str, Any] | None = None
    error: JobError | None = None
