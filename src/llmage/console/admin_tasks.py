"""`/api/admin/tasks`: every user's tasks, filtered; one task in full; cancel one.

Cancel goes through the owner's cancel path (services/tasks.py), so the hold is released
exactly once whoever cancels and whatever the poller does meanwhile.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.requests import Request

from llmage.console.finance import DateFrom, DateTo, PageNo, PageSize
from llmage.console.models import Money, errors, iso
from llmage.console.session import AdminUser, console_platform
from llmage.domain.tasks import TaskStatus
from llmage.services.task_admin import AdminTaskView, TaskFilter

router = APIRouter(prefix="/api/admin", tags=["Console: admin"])

TaskId = Annotated[str, PathParam(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]
StatusName = Literal[
    "CREATED", "SUBMITTING", "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
]


class AdminTaskOut(BaseModel):
    id: str
    user_id: int
    username: str
    kind: str
    llmid: str
    model: str
    dialect: str
    status: str
    progress: int
    quoted: Money = Field(description="The hold taken at submit")
    charged: Money | None = Field(description="What was charged once finished")
    channel_id: int | None
    channel: str | None
    provider: str | None
    error_code: str | None
    error_message: str | None
    created_at: str | None
    finished_at: str | None


class AdminTaskListOut(BaseModel):
    items: list[AdminTaskOut]
    page: int
    page_size: int
    has_more: bool


class AdminTaskDetailOut(AdminTaskOut):
    params: dict[str, Any]
    usage: dict[str, Any] | None
    upstream_id: str | None
    inputs: dict[str, list[str]] = Field(description="Input files per slot, as signed links")
    image: str | None
    video: str | None
    images: list[str]
    updated_at: str | None


def base_url_of(request: Request) -> str:
    return console_platform(request).settings.public_base_url or str(request.base_url)


def _out(found: Any) -> dict[str, Any]:
    row = found.row
    return {
        "id": row.id,
        "user_id": row.user_id,
        "username": found.username,
        "kind": row.kind,
        "llmid": row.llmid,
        "model": row.model,
        "dialect": row.dialect,
        "status": row.status.value,
        "progress": row.progress,
        "quoted": Money.of(row.quoted),
        "charged": None if row.charged is None else Money.of(row.charged),
        "channel_id": row.channel_id,
        "channel": found.channel_name,
        "provider": row.provider,
        "error_code": row.error_code,
        "error_message": row.error_message,
        "created_at": iso(row.created_at),
        "finished_at": iso(row.finished_at),
    }


def detail_out(view: AdminTaskView) -> AdminTaskDetailOut:
    row = view.found.row
    return AdminTaskDetailOut(
        **_out(view.found),
        params=row.params,
        usage=row.usage,
        upstream_id=row.upstream_id,
        inputs=view.inputs,
        image=view.outputs["image"],
        video=view.outputs["video"],
        images=view.outputs["images"],
        updated_at=iso(row.updated_at),
    )


@router.get("/tasks", summary="Every user's tasks, newest first", responses=errors(400, 401, 403))
async def list_tasks(
    admin: AdminUser,
    request: Request,
    status: Annotated[list[StatusName] | None, Query(description="Repeat for several")] = None,
    model: Annotated[str | None, Query(max_length=128, description="Model name or llmid")] = None,
    user: Annotated[str | None, Query(max_length=64, description="Username or id")] = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    page: PageNo = 1,
    page_size: PageSize = 50,
) -> AdminTaskListOut:
    p = console_platform(request)
    since, until = p.finance.date_range(date_from, date_to)
    f = TaskFilter(
        statuses=tuple(TaskStatus(s) for s in status or ()),
        model=model or None,
        user=user or None,
        since=since,
        until=until,
    )
    found = await p.task_admin.search(f, limit=page_size + 1, offset=(page - 1) * page_size)
    return AdminTaskListOut(
        items=[AdminTaskOut(**_out(t)) for t in found[:page_size]],
        page=page,
        page_size=page_size,
        has_more=len(found) > page_size,
    )


@router.get(
    "/tasks/{task_id}",
    summary="One task: parameters, files, error, charge, channel",
    responses=errors(401, 403, 404),
)
async def show_task(task_id: TaskId, admin: AdminUser, request: Request) -> AdminTaskDetailOut:
    view = await console_platform(request).task_admin.inspect(task_id, base_url_of(request))
    return detail_out(view)


@router.post(
    "/tasks/{task_id}/cancel",
    summary="Cancel a user's open task (its hold is released)",
    responses=errors(401, 403, 404, 409),
)
async def cancel_task(task_id: TaskId, admin: AdminUser, request: Request) -> AdminTaskDetailOut:
    view = await console_platform(request).task_admin.cancel(task_id, base_url_of(request))
    return detail_out(view)
