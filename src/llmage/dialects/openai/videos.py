"""OpenAI videos API (`/v1/videos...`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["OpenAI"])
