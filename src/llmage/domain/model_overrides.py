"""Admin overrides of the catalog file: a model switched off, or sold at another price.

An override names one llmid; `enabled=False` hides the model from every request path (the
catalog keeps it for settling tasks already running), and `price` replaces some of its prices,
in micro-units, in the catalog file's own shape:

- a chat model: any of `input_per_mtok`, `output_per_mtok`, `cached_input_per_mtok`;
- a media model: `rates` and/or `settle_rates`, keyed by the values the file already prices
  (the unit, the `by` parameter and the multipliers stay the file's: an override changes what a
  thing costs, never what is priced).

Pure: the database stores the overrides, `apply_overrides` lays them over the file's catalog.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from llmage.domain.catalog import Catalog, ChatPrice, MediaPrice, ModelEntry
from llmage.domain.errors import InvalidParameter
from llmage.domain.money import MAX_AMOUNT

CHAT_PRICE_FIELDS = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok")
MEDIA_PRICE_FIELDS = ("rates", "settle_rates")


@dataclass(frozen=True, slots=True)
class ModelOverride:
    llmid: str
    enabled: bool = True
    price: Mapping[str, Any] | None = None  # micro-units, see the module docstring
    updated_at: int = 0
    updated_by: int | None = None


def _micros(value: object, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_AMOUNT:
        raise InvalidParameter(f"{param} must be a price of 0 or more", param=param)
    return value


def check_price(entry: ModelEntry, price: Mapping[str, Any]) -> dict[str, Any]:
    """`price` (micro-units) validated against what `entry` prices; a 400 names the field."""
    out: dict[str, Any] = {}
    if isinstance(entry.price, ChatPrice):
        for key, value in price.items():
            if key not in CHAT_PRICE_FIELDS:
                raise InvalidParameter(
                    f"A chat model's price has no {key!r}",
                    param=f"price.{key}",
                    allowed=CHAT_PRICE_FIELDS,
                )
            if value is not None:
                out[key] = _micros(value, f"price.{key}")
        return out
    media = entry.price
    for key, table in price.items():
        if key not in MEDIA_PRICE_FIELDS:
            raise InvalidParameter(
                f"A media model's price has no {key!r}",
                param=f"price.{key}",
                allowed=MEDIA_PRICE_FIELDS,
            )
        known = media.rates if key == "rates" else media.settle_rates
        if not isinstance(table, Mapping):
            raise InvalidParameter(f"price.{key} must be an object", param=f"price.{key}")
        if key == "settle_rates" and not known:
            raise InvalidParameter(
                "This model is charged at its quoted price: it has no settle rates",
                param=f"price.{key}",
            )
        rates: dict[str, int] = {}
        for name, value in table.items():
            param = f"price.{key}.{name}"
            if name not in known:
                raise InvalidParameter(
                    f"{entry.llmid} is not priced by {name!r}", param=param, allowed=tuple(known)
                )
            rates[str(name)] = _micros(value, param)
        if rates:
            out[key] = rates
    return out


def priced(entry: ModelEntry, price: Mapping[str, Any]) -> ModelEntry:
    """`entry` with the override's prices (unknown keys were refused when it was stored; a
    stale one, left by a catalog file that changed since, is ignored)."""
    if isinstance(entry.price, ChatPrice):
        fields = {k: v for k, v in price.items() if k in CHAT_PRICE_FIELDS and isinstance(v, int)}
        return dataclasses.replace(entry, price=dataclasses.replace(entry.price, **fields))
    media: MediaPrice = entry.price

    def merged(base: Mapping[str, int], key: str) -> Mapping[str, int]:
        table = price.get(key) or {}
        return MappingProxyType(
            {k: (table[k] if isinstance(table.get(k), int) else v) for k, v in base.items()}
        )

    new = dataclasses.replace(
        media,
        rates=merged(media.rates, "rates"),
        settle_rates=merged(media.settle_rates, "settle_rates"),
    )
    return dataclasses.replace(entry, price=new)


def apply_overrides(base: Catalog, overrides: Iterable[ModelOverride]) -> Catalog:
    """`base` with each override applied; overrides of llmids `base` lacks are ignored."""
    by_llmid = {o.llmid: o for o in overrides}
    entries = []
    for entry in base.all_entries():
        o = by_llmid.get(entry.llmid)
        entries.append(priced(entry, o.price) if o is not None and o.price else entry)
    disabled = set(base.disabled()) | {o.llmid for o in by_llmid.values() if not o.enabled}
    return Catalog(entries, base.aliases(), disabled)
