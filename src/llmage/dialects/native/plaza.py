"""The model plaza: every catalog entry with its parameters as JSON Schema and its price."""

from __future__ import annotations

from typing import Any

from llmage.domain.catalog import Catalog, ChatPrice, MediaPrice, ModelEntry
from llmage.domain.money import format_amount
from llmage.domain.params import json_schema


def price_doc(entry: ModelEntry, currency: str) -> dict[str, Any]:
    p = entry.price
    if isinstance(p, ChatPrice):
        doc: dict[str, Any] = {
            "currency": currency,
            "unit": "1M tokens",
            "input": format_amount(p.input_per_mtok),
            "output": format_amount(p.output_per_mtok),
        }
        if p.cached_input_per_mtok is not None:
            doc["cached_input"] = format_amount(p.cached_input_per_mtok)
        return doc
    assert isinstance(p, MediaPrice)
    return {
        "currency": currency,
        "unit": p.unit,
        "by": p.by,
        "rates": {k: format_amount(v) for k, v in p.rates.items()},
        "multipliers": {k: dict(v) for k, v in p.multipliers.items()},
    }


def plaza_entry(entry: ModelEntry, currency: str) -> dict[str, Any]:
    return {
        "llmid": entry.llmid,
        "vendor": entry.vendor,
        "platform": entry.platform,
        "kind": entry.kind.value,
        "display_name": entry.display_name,
        "description": entry.description,
        "models": list(entry.names),
        "default_model": entry.default_name,
        "max_output_tokens": entry.max_output_tokens,
        "context_window": entry.context_window,
        "parameters": json_schema(entry.params) if entry.params else None,
        "price": price_doc(entry, currency),
    }


def plaza(catalog: Catalog, currency: str) -> dict[str, Any]:
    return {"object": "list", "data": [plaza_entry(e, currency) for e in catalog.entries()]}
