"""OpenAI images API (`/v1/images/generations`, `/v1/images/edits`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["OpenAI"])
