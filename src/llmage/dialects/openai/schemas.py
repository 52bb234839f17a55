"""OpenAI-dialect wire shapes, for /openapi.json only: handlers build plain dicts (faster), and
the contract tests check that every answer matches these. Extra fields are allowed where an
upstream's own fields pass through (chat) or the seeds add some (platform `detail`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    """The OpenAI error envelope; the official SDKs map its status to their exceptions."""

    error: OpenAIErrorBody


class ChatCompletion(BaseModel):
    """The upstream's completion with our `model` name; other upstream fields pass through."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: str
    created: int | None = None
    model: str
    choices: list[dict[str, Any]]
    usage: dict[str, Any] | None = None


class Model(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[Model]


class OpenAITaskError(BaseModel):
    code: str
    message: str


class TaskDetail(BaseModel):
    """`?detail=true` (seed 003): what ran, on what, for how much, and when."""

    task_id: str
    kind: str
    llmid: str
    model: str
    platform: str | None
    native_status: str
    params: dict[str, Any]
    usage: dict[str, Any] | None
    quoted: str
    charged: str | None
    currency: str
    error: OpenAITaskError | None
    remix_of: str | None
    created_at: int | None
    updated_at: int | None
    finished_at: int | None


VideoStatus = Literal["queued", "in_progress", "completed", "failed"]


class Video(BaseModel):
    id: str
    object: Literal["video"]
    model: str
    status: VideoStatus
    progress: int = Field(ge=0, le=100)
    created_at: int | None
    completed_at: int | None
    expires_at: int | None
    prompt: str | None
    seconds: str | None
    size: str | None
    remixed_from_video_id: str | None
    error: OpenAITaskError | None
    detail: TaskDetail | None = None


class VideoList(BaseModel):
    object: Literal["list"]
    data: list[Video]
    has_more: bool
    first_id: str | None
    last_id: str | None


class VideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"]
    deleted: Literal[True]


class ImageItem(BaseModel):
    """One image: base64 (a data URI on the platform routes) or a signed llmage URL."""

    b64_json: str | None = None
    url: str | None = None


class ImagesResponse(BaseModel):
    created: int | None
    data: list[ImageItem]


class ImageTask(BaseModel):
    """`?async=true` answer and `GET .../images/{task_id}` (seed 003)."""

    id: str
    object: Literal["image.task"]
    status: VideoStatus
    model: str
    created_at: int | None
    completed_at: int | None = None
    data: list[ImageItem] | None = None
    error: OpenAITaskError | None = None
    detail: TaskDetail | None = None
