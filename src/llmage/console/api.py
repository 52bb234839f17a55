"""The console JSON API: every `/api/...` router, in one list for the app to include.

They are included under one parent router that applies the console's text rule to every
query and path value (a request body's text fields use `models.Text`, the same rule)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request

from llmage.console.account_routes import router as account_router
from llmage.console.admin_channels import router as admin_channels_router
from llmage.console.admin_models import router as admin_models_router
from llmage.console.admin_money import router as admin_money_router
from llmage.console.admin_tasks import router as admin_tasks_router
from llmage.console.admin_users import router as admin_users_router
from llmage.console.auth_routes import router as auth_router
from llmage.console.finance import router as finance_router
from llmage.console.models import control_char_problem
from llmage.console.payments import router as payments_router
from llmage.console.playground import router as playground_router
from llmage.domain.errors import InvalidParameter

_ROUTERS: tuple[APIRouter, ...] = (
    auth_router,
    account_router,
    admin_users_router,
    payments_router,
    finance_router,
    admin_money_router,
    admin_channels_router,
    admin_models_router,
    admin_tasks_router,
    playground_router,
)


async def plain_text_values(request: Request) -> None:
    """A control character in a query or path value is a 400 naming it, before any database
    sees it (PostgreSQL refuses NUL in text)."""
    for name, value in (*request.query_params.multi_items(), *request.path_params.items()):
        problem = control_char_problem(str(value))
        if problem:
            raise InvalidParameter(f"{name} {problem}", param=name)


_console = APIRouter(dependencies=[Depends(plain_text_values)])
for _router in _ROUTERS:
    _console.include_router(_router)

ROUTERS: tuple[APIRouter, ...] = (_console,)
