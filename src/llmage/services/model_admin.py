"""Models and prices as an admin changes them: overrides stored in the database, laid over the
catalog file, announced to every instance.

A change is written, applied here at once (the next request is priced with it), then announced
with the CATALOG topic: every other instance reloads the file and the overrides on the message.
Tasks already accepted keep the price they were quoted (the hold); a disabled model refuses new
requests but its running tasks still settle (`Catalog.any_by_llmid`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llmage.db.repos.model_overrides import ModelOverrideRepo
from llmage.domain.catalog import Catalog, ChatPrice, ModelEntry
from llmage.domain.clock import now_ms
from llmage.domain.errors import NotFound
from llmage.domain.model_overrides import ModelOverride, apply_overrides, check_price

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelView:
    entry: ModelEntry  # as priced now (overrides applied)
    base: ModelEntry  # as the catalog file prices it
    enabled: bool
    override: ModelOverride | None


def price_micros(entry: ModelEntry) -> dict[str, Any]:
    """An entry's price in micro-units, in the catalog file's shape."""
    p = entry.price
    if isinstance(p, ChatPrice):
        return {
            "input_per_mtok": p.input_per_mtok,
            "output_per_mtok": p.output_per_mtok,
            "cached_input_per_mtok": p.cached_input_per_mtok,
        }
    return {
        "unit": p.unit,
        "by": p.by,
        "rates": dict(p.rates),
        "settle_unit": p.settle_unit,
        "settle_rates": dict(p.settle_rates),
    }


class ModelAdmin:
    def __init__(
        self,
        repo: ModelOverrideRepo,
        catalog: Catalog,
        base: Callable[[], Catalog],
        announce: Callable[[], Awaitable[None]],
    ) -> None:
        self._repo = repo
        self._catalog = catalog  # the platform's, changed in place
        self._base = base  # the catalog file, read again on each refresh
        self._announce = announce
        self._refreshing: set[asyncio.Task[None]] = set()
        self._overrides: list[ModelOverride] = []  # as last read

    async def refresh(self) -> None:
        """Read the file and the overrides again and apply them in place."""
        base = self._base()
        self._overrides = await self._repo.all()
        self._catalog.adopt(apply_overrides(base, self._overrides))

    def refresh_soon(self) -> None:
        """For the invalidation bus (a sync handler): the file again at once, with the
        overrides as last read, then the overrides again in the background. A broken file or
        database keeps the catalog in use."""
        try:
            self._catalog.adopt(apply_overrides(self._base(), self._overrides))
        except Exception:
            log.exception("catalog reload failed; keeping the catalog in use")
            return

        async def run() -> None:
            try:
                await self.refresh()
            except Exception:
                log.exception("catalog reload failed; keeping the catalog in use")

        try:
            task = asyncio.get_running_loop().create_task(run(), name="catalog-refresh")
        except RuntimeError:  # no loop (a CLI command's own announcement): nothing to refresh
            return
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def views(self) -> list[ModelView]:
        base = self._base()
        overrides = {o.llmid: o for o in await self._repo.all()}
        disabled = self._catalog.disabled()
        out = []
        for entry in self._catalog.all_entries():
            original = base.any_by_llmid(entry.llmid) or entry
            out.append(
                ModelView(entry, original, entry.llmid not in disabled, overrides.get(entry.llmid))
            )
        return out

    async def view(self, llmid: str) -> ModelView:
        found = next((v for v in await self.views() if v.entry.llmid == llmid), None)
        if found is None:
            raise NotFound(f"No model with llmid '{llmid}'", param="llmid")
        return found

    async def update(
        self,
        llmid: str,
        *,
        admin_id: int,
        enabled: bool | None = None,
        price: Mapping[str, Any] | None = None,
        reset_price: bool = False,
    ) -> ModelView:
        """Switch a model on or off and/or change some of its prices (micro-units, merged
        over the current override); `reset_price` goes back to the file's price first."""
        current = await self.view(llmid)
        old = current.override
        merged: dict[str, Any] = {} if reset_price or old is None else dict(old.price or {})
        if price:
            for key, value in check_price(current.base, price).items():
                if isinstance(value, dict):
                    merged[key] = {**(merged.get(key) or {}), **value}
                else:
                    merged[key] = value
        await self._repo.put(
            ModelOverride(
                llmid=llmid,
                enabled=current.enabled if enabled is None else enabled,
                price=merged or None,
                updated_at=now_ms(),
                updated_by=admin_id,
            )
        )
        await self.refresh()
        await self._announce()
        return await self.view(llmid)
