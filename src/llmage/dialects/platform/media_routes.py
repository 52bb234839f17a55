"""Platform-prefixed videos and images (seed 003): `/{platform}/v1/videos...`,
`/{platform}/v1/images/...`, pinned to one upstream platform's channels."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["Platform-prefixed (OpenAI format)"])
