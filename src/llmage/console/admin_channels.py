"""`/api/admin/channels` and `/api/admin/providers`: the `llmage channel ...` operations as JSON,
for the console and scripts. Same service, same checks, same views (never a secret).

Every route takes `AdminUser` (console/session.py: an admin's session with CSRF, or an admin's
API key); errors are the console's `{"error": {...}}` naming the field."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from llmage.console.models import Text, errors
from llmage.console.session import console_platform as platform_of
from llmage.console.session import require_admin
from llmage.domain.credentials import Credentials, from_fields
from llmage.domain.errors import InvalidParameter
from llmage.providers.registry import PROVIDERS

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Depends(require_admin)])
_ERRORS = errors(400, 401, 403, 404, 409)


class CredentialFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: Text | None = Field(None, description="One API key")
    access_key: Text | None = Field(None, description="Access key of a pair (Kling, Jimeng)")
    secret_key: Text | None = Field(None, description="Secret key of a pair")
    api_keys: list[Text] | None = Field(None, description="A key pool")

    def credentials(self) -> Credentials | None:
        try:
            return from_fields(
                api_key=self.api_key,
                access_key=self.access_key,
                secret_key=self.secret_key,
                api_keys=self.api_keys,
            )
        except ValueError as exc:
            raise InvalidParameter(str(exc), param="credentials") from None


class ChannelCreate(CredentialFields):
    name: Text = Field(..., min_length=1, max_length=128)
    provider: Text = Field(..., description="A provider of GET /api/admin/providers")
    models: list[Text] = Field(..., min_length=1, description="Model names or llmids; '*' = all")
    base_url: Text | None = Field(None, description="Default: the provider's")
    platform: Text | None = Field(None, description="Default: the provider's platform name")
    model_map: dict[Text, Text] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    priority: int = 0
    weight: int = Field(1, ge=1)


class ChannelUpdate(CredentialFields):
    base_url: Text | None = None
    platform: Text | None = None
    models: list[Text] | None = Field(None, min_length=1)
    model_map: dict[Text, Text] | None = None
    options: dict[str, Any] | None = None
    priority: int | None = None
    weight: int | None = Field(None, ge=1)
    enabled: bool | None = None


@router.get("/providers", summary="Providers the registry holds (admin)", responses=_ERRORS)
async def providers() -> JSONResponse:
    return JSONResponse(
        {
            "data": [
                {
                    "name": s.name,
                    "platform": s.platform,
                    "credential_types": list(s.credentials),
                    "default_base_url": s.default_base_url,
                    "chat": s.chat is not None,
                    "tasks": s.task is not None,
                }
                for s in PROVIDERS
            ]
        }
    )


@router.get("/channels", summary="List channels (admin)", responses=_ERRORS)
async def list_channels(request: Request) -> JSONResponse:
    ops = platform_of(request).channel_ops
    views = await ops.views()
    return JSONResponse({"data": [{**v.as_dict(), "health": ops.health(v.id)} for v in views]})


@router.post("/channels", status_code=201, summary="Add a channel (admin)", responses=_ERRORS)
async def add_channel(body: ChannelCreate, request: Request) -> JSONResponse:
    view = await platform_of(request).channel_ops.add(
        name=body.name,
        provider=body.provider,
        models=body.models,
        credentials=body.credentials(),
        base_url=body.base_url,
        platform=body.platform,
        model_map=body.model_map,
        options=body.options,
        priority=body.priority,
        weight=body.weight,
    )
    return JSONResponse(view.as_dict(), status_code=201)


@router.get("/channels/{channel}", summary="One channel (admin)", responses=_ERRORS)
async def show_channel(channel: str, request: Request) -> JSONResponse:
    return JSONResponse((await platform_of(request).channel_ops.show(channel)).as_dict())


@router.patch("/channels/{channel}", summary="Change a channel (admin)", responses=_ERRORS)
async def update_channel(channel: str, body: ChannelUpdate, request: Request) -> JSONResponse:
    fields = body.model_dump(exclude={"api_key", "access_key", "secret_key", "api_keys"})
    view = await platform_of(request).channel_ops.update(
        channel, credentials=body.credentials(), **fields
    )
    return JSONResponse(view.as_dict())


@router.post(
    "/channels/{channel}/enable", summary="Route to a channel again (admin)", responses=_ERRORS
)
async def enable_channel(channel: str, request: Request) -> JSONResponse:
    return JSONResponse(
        (await platform_of(request).channel_ops.set_enabled(channel, True)).as_dict()
    )


@router.post(
    "/channels/{channel}/disable", summary="Stop routing to a channel (admin)", responses=_ERRORS
)
async def disable_channel(channel: str, request: Request) -> JSONResponse:
    view = await platform_of(request).channel_ops.set_enabled(channel, False)
    return JSONResponse(view.as_dict())


@router.post(
    "/channels/{channel}/test", summary="A real minimal upstream call (admin)", responses=_ERRORS
)
async def test_channel(channel: str, request: Request) -> JSONResponse:
    return JSONResponse((await platform_of(request).channel_ops.test(channel)).as_dict())


@router.delete("/channels/{channel}", summary="Remove a channel (admin)", responses=_ERRORS)
async def remove_channel(channel: str, request: Request, force: bool = False) -> JSONResponse:
    view = await platform_of(request).channel_ops.remove(channel, force=force)
    return JSONResponse({"id": view.id, "name": view.name, "deleted": True})
