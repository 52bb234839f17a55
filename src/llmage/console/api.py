"""The console JSON API: every `/api/...` router, in one list for the app to include."""

from __future__ import annotations

from fastapi import APIRouter

from llmage.console.account_routes import router as account_router
from llmage.console.admin_channels import router as admin_channels_router
from llmage.console.admin_models import router as admin_models_router
from llmage.console.admin_money import router as admin_money_router
from llmage.console.admin_tasks import router as admin_tasks_router
from llmage.console.admin_users import router as admin_users_router
from llmage.console.auth_routes import router as auth_router
from llmage.console.finance import router as finance_router
from llmage.console.payments import router as payments_router
from llmage.console.playground import router as playground_router

ROUTERS: tuple[APIRouter, ...] = (
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
