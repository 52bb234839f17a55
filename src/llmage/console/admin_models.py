"""`/api/admin/models`: every catalog model with its state and price; an admin switches a
model off or on and changes its price (services/model_admin.py stores and announces it).

Prices come in as currency units (a string such as "2.50", or a number) and are converted
exactly to integer micro-units (console/amounts.py); they go out as `Money` (both forms).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.requests import Request

from llmage.console.amounts import AmountIn, price_in
from llmage.console.models import Money, _Request, errors, iso
from llmage.console.session import AdminUser, console_platform
from llmage.console.web.plaza import price_lines
from llmage.services.model_admin import ModelView, price_micros

router = APIRouter(prefix="/api/admin", tags=["Console: admin"])

Llmid = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class PriceOut(BaseModel):
    """Chat models fill the per-million-token fields, media models `unit`, `by` and `rates`."""

    input_per_mtok: Money | None = None
    output_per_mtok: Money | None = None
    cached_input_per_mtok: Money | None = None
    unit: str | None = Field(None, description="second, image or request")
    by: str | None = Field(None, description="The parameter whose value picks the rate")
    rates: dict[str, Money] | None = None
    settle_unit: str | None = None
    settle_rates: dict[str, Money] | None = None


class ModelAdminOut(BaseModel):
    llmid: str
    display_name: str
    names: list[str]
    kind: str
    vendor: str
    platform: str
    description: str
    enabled: bool
    price: PriceOut = Field(description="What a request is charged now")
    file_price: PriceOut = Field(description="The catalog file's price")
    price_text: list[str]
    overridden: bool
    updated_at: str | None


class ModelAdminListOut(BaseModel):
    data: list[ModelAdminOut]


class PriceIn(_Request):
    input_per_mtok: AmountIn | None = None
    output_per_mtok: AmountIn | None = None
    cached_input_per_mtok: AmountIn | None = None
    rates: dict[str, AmountIn] | None = Field(None, description="Per `by` value, currency units")
    settle_rates: dict[str, AmountIn] | None = None

    def micros(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok"):
            value = getattr(self, key)
            if value is not None:
                out[key] = price_in(value, f"price.{key}")
        for key in ("rates", "settle_rates"):
            table = getattr(self, key)
            if table:
                out[key] = {k: price_in(v, f"price.{key}.{k}") for k, v in table.items()}
        return out


class ModelAdminUpdate(_Request):
    enabled: bool | None = Field(None, description="false: every request for it is refused")
    price: PriceIn | None = Field(None, description="Prices to change (currency units)")
    reset_price: bool = Field(False, description="Back to the catalog file's price first")


def _price_out(micros: dict[str, Any]) -> PriceOut:
    def money(v: int | None) -> Money | None:
        return None if v is None else Money.of(v)

    if "rates" not in micros:
        return PriceOut(
            input_per_mtok=money(micros["input_per_mtok"]),
            output_per_mtok=money(micros["output_per_mtok"]),
            cached_input_per_mtok=money(micros["cached_input_per_mtok"]),
        )
    return PriceOut(
        unit=micros["unit"],
        by=micros["by"],
        rates={k: Money.of(v) for k, v in micros["rates"].items()},
        settle_unit=micros["settle_unit"],
        settle_rates={k: Money.of(v) for k, v in micros["settle_rates"].items()} or None,
    )


def _out(view: ModelView, currency: str) -> ModelAdminOut:
    e = view.entry
    return ModelAdminOut(
        llmid=e.llmid,
        display_name=e.display_name,
        names=list(e.names),
        kind=e.kind.value,
        vendor=e.vendor,
        platform=e.platform,
        description=e.description,
        enabled=view.enabled,
        price=_price_out(price_micros(e)),
        file_price=_price_out(price_micros(view.base)),
        price_text=price_lines(e, currency),
        overridden=view.override is not None,
        updated_at=iso(view.override.updated_at) if view.override else None,
    )


@router.get(
    "/models",
    summary="Every catalog model, enabled or not, with its price",
    responses=errors(401, 403),
)
async def list_models(admin: AdminUser, request: Request) -> ModelAdminListOut:
    p = console_platform(request)
    views = await p.model_admin.views()
    return ModelAdminListOut(data=[_out(v, p.settings.currency) for v in views])


@router.get("/models/{llmid}", summary="One catalog model", responses=errors(401, 403, 404))
async def show_model(llmid: Llmid, admin: AdminUser, request: Request) -> ModelAdminOut:
    p = console_platform(request)
    return _out(await p.model_admin.view(llmid), p.settings.currency)


@router.patch(
    "/models/{llmid}",
    summary="Switch a model on or off, or change its price (every instance within a second)",
    responses=errors(400, 401, 403, 404),
)
async def update_model(
    llmid: Llmid, body: ModelAdminUpdate, admin: AdminUser, request: Request
) -> ModelAdminOut:
    p = console_platform(request)
    view = await p.model_admin.update(
        llmid,
        admin_id=admin.user_id,
        enabled=body.enabled,
        price=body.price.micros() if body.price else None,
        reset_price=body.reset_price,
    )
    return _out(view, p.settings.currency)
