"""Native-dialect wire shapes (seeds 000, 001), for /openapi.json only (handlers build dicts);
the contract tests check every answer against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from llmage.dialects.openai.schemas import ChatCompletion


class NativeError(BaseModel):
    """Seed 000's error: one sentence, e.g. "Invalid API Key", "Insufficient balance"."""

    error: str


class Completion(ChatCompletion):
    """The OpenAI completion plus seed 000's flat fields."""

    content: str | None
    reasoning_content: str | None
    finish: Literal["1"]
    llmusageid: str


class Submitted(BaseModel):
    taskid: str
    status: str  # lower case, as the seed's example: "created"


class NativeTaskError(BaseModel):
    code: str
    message: str | None


class Task(BaseModel):
    taskid: str
    status: Literal["CREATED", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"]
    usage: dict[str, Any] | None
    image: str | None  # signed cover / first image URL
    video: str | None  # signed video URL
    images: list[str] | None = None
    error: NativeTaskError | None = None


class Estimate(BaseModel):
    llmid: str
    model: str
    amount: str
    amount_micros: int
    currency: str
    params: dict[str, Any]


class PlazaEntry(BaseModel):
    model_config = ConfigDict(extra="allow")
    llmid: str
    vendor: str
    platform: str
    kind: str
    display_name: str | None
    description: str | None
    models: list[str]
    default_model: str
    max_output_tokens: int | None
    context_window: int | None
    parameters: dict[str, Any] | None  # JSON Schema of the model's parameters
    price: dict[str, Any] | None


class Plaza(BaseModel):
    object: Literal["list"]
    data: list[PlazaEntry]
