"""The admin area's section pages: channels, models and prices, tasks (list and one task).

Lists are filled by their page script from the JSON API (`/api/admin/...`, the CSRF header on
changes); one task's inspect page is rendered here, autoescaped, from the same view the API
answers. Every route refuses a non-admin like `/admin` does.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from starlette.requests import Request
from starlette.responses import Response

from llmage.console.admin_tasks import StatusName, base_url_of, detail_out
from llmage.console.session import console_platform
from llmage.console.web.pages import page_user, render, to_login
from llmage.domain.errors import NotFound
from llmage.domain.principal import ConsoleUser

router = APIRouter(include_in_schema=False)

STATUSES = StatusName.__args__  # type: ignore[attr-defined]


async def _admin(request: Request) -> ConsoleUser | Response:
    user = await page_user(request)
    if user is None:
        return to_login(request)
    if not user.is_admin:
        return render(request, "forbidden.html", user, status=403)
    return user


@router.get("/admin/channels")
async def channels_page(request: Request) -> Response:
    user = await _admin(request)
    if isinstance(user, Response):
        return user
    return render(request, "admin_channels.html", user)


@router.get("/admin/models")
async def models_page(request: Request) -> Response:
    user = await _admin(request)
    if isinstance(user, Response):
        return user
    currency = console_platform(request).settings.currency
    return render(request, "admin_models.html", user, currency=currency)


@router.get("/admin/tasks")
async def tasks_page(request: Request) -> Response:
    user = await _admin(request)
    if isinstance(user, Response):
        return user
    return render(request, "admin_tasks.html", user, statuses=STATUSES)


@router.get("/admin/tasks/{task_id}")
async def task_page(
    request: Request, task_id: Annotated[str, PathParam(max_length=64)]
) -> Response:
    user = await _admin(request)
    if isinstance(user, Response):
        return user
    p = console_platform(request)
    try:
        view = await p.task_admin.inspect(task_id, base_url_of(request))
    except NotFound:
        return render(request, "not_found.html", user, status=404)
    task = detail_out(view)
    params = json.dumps(task.params, ensure_ascii=False, indent=2)
    return render(
        request,
        "admin_task.html",
        user,
        task=task,
        params_json=params,
        currency=p.settings.currency,
    )
