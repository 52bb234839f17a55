"""Platform-prefixed videos and images (seed 003): `/{platform}/v1/videos...`,
`/{platform}/v1/images/...`, pinned to one upstream platform's channels.

Same handlers as `/v1`, with two seed quirks: `b64_json` is a data URI
(`data:image/png;base64,...`), and `GET .../{task_id}?detail=true` adds the task's metadata.
A platform no enabled channel belongs to is a 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from starlette.requests import Request
from starlette.responses import Response

from llmage.dialects.http import authenticate, platform_of
from llmage.dialects.openai import images, videos
from llmage.dialects.platform.routes import PLATFORM_PARAM, RESERVED
from llmage.domain.errors import NotFound

router = APIRouter(tags=["Platform-prefixed (OpenAI format)"])

Platform = Annotated[
    str, PathParam(description=PLATFORM_PARAM["description"], examples=[PLATFORM_PARAM["example"]])
]


async def known_platform(request: Request, platform: str) -> str:
    await authenticate(request)  # a stranger learns nothing, not even which platforms exist
    if platform in RESERVED or platform not in await platform_of(request).directory.platforms():
        raise NotFound(f"Unknown platform '{platform}'", param="platform")
    return platform


@router.post(
    "/{platform}/v1/videos",
    openapi_extra=videos.CREATE_DOC,
    responses=videos.VIDEO_RESPONSES,
    summary="Create a video on one platform's channels (seed 003)",
)
async def create_video(platform: Platform, request: Request) -> Response:
    return await videos.create_video(request, await known_platform(request, platform))


@router.get(
    "/{platform}/v1/videos",
    openapi_extra=videos.LIST_DOC,
    responses=videos.LIST_RESPONSES,
    summary="List your videos (cursor page)",
)
async def list_videos(platform: Platform, request: Request) -> Response:
    await known_platform(request, platform)
    return await videos.list_videos(request)


@router.get(
    "/{platform}/v1/videos/{task_id}",
    openapi_extra=videos.DETAIL_DOC,
    responses=videos.VIDEO_RESPONSES,
    summary="A video task (?detail=true adds task metadata)",
)
async def retrieve_video(platform: Platform, task_id: str, request: Request) -> Response:
    await known_platform(request, platform)
    return await videos.retrieve_video(request, task_id)


@router.delete(
    "/{platform}/v1/videos/{task_id}",
    responses=videos.DELETE_RESPONSES,
    summary="Delete a video (cancels it if open)",
)
async def delete_video(platform: Platform, task_id: str, request: Request) -> Response:
    await known_platform(request, platform)
    return await videos.delete_video(request, task_id)


@router.get(
    "/{platform}/v1/videos/{task_id}/content",
    summary="Download the video (?variant=thumbnail for the cover; byte ranges)",
    response_class=Response,
    openapi_extra=videos.CONTENT_DOC,
    responses=videos.CONTENT_RESPONSES,
)
async def video_content(platform: Platform, task_id: str, request: Request) -> Response:
    await known_platform(request, platform)
    return await videos.video_content(request, task_id)


@router.post(
    "/{platform}/v1/videos/{task_id}/remix",
    openapi_extra=videos.REMIX_DOC,
    responses=videos.VIDEO_RESPONSES,
    summary="Remix a completed video",
)
async def remix_video(platform: Platform, task_id: str, request: Request) -> Response:
    return await videos.remix_video(request, task_id, await known_platform(request, platform))


@router.post(
    "/{platform}/v1/images/generations",
    openapi_extra=images.DOC,
    responses=images.CREATE_RESPONSES,
    summary="Generate images on one platform (seed 003; ?async=true for a task)",
)
async def image_generations(platform: Platform, request: Request) -> Response:
    name = await known_platform(request, platform)
    return await images.create_image(request, edit=False, platform=name, data_uri=True)


@router.post(
    "/{platform}/v1/images/edits",
    openapi_extra=images.DOC,
    responses=images.CREATE_RESPONSES,
    summary="Edit images on one platform (seed 003; JSON or multipart image[])",
)
async def image_edits(platform: Platform, request: Request) -> Response:
    name = await known_platform(request, platform)
    return await images.create_image(request, edit=True, platform=name, data_uri=True)


@router.get(
    "/{platform}/v1/images/{task_id}",
    openapi_extra=images.TASK_DOC,
    responses=images.TASK_RESPONSES,
    summary="An image task (seed 003): status, and the images once done",
)
async def image_task(platform: Platform, task_id: str, request: Request) -> Response:
    await known_platform(request, platform)
    return await images.get_image_task(request, task_id, data_uri=True)
