"""new-api style video generation (`/v1/video/generations`, seeds 002 and 004)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/video", tags=["new-api style video"])
