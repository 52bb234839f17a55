"""Price quotes for media (video and image) requests.

The quote is computed from the normalised request before submission: it is what the caller holds
on the account and, unless the upstream reports otherwise, what it charges. Arithmetic is exact
(fractions) and the result is rounded up to a whole micro-unit, so a quote never undercharges.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

from llmage.domain.catalog import MediaPrice, ModelEntry
from llmage.domain.params import InvalidParameterError, MissingParameterError


def _key(value: object) -> str:
    if isinstance(value, bool):
        return "Y" if value else "N"  # booleans are written Y/N in the catalog, like off_peak
    return str(value)


def _lookup(table: Mapping[str, object], value: object) -> object | None:
    key = _key(value)
    if key in table:
        return table[key]
    folded = key.casefold()
    for k, v in table.items():
        if k.casefold() == folded:
            return v
    return None


def _rate(price: MediaPrice, params: Mapping[str, object]) -> int:
    if price.by is None:
        return price.rates["*"]
    value = params.get(price.by)
    rate = _lookup(price.rates, value) if value is not None else None
    if rate is None:
        rate = price.rates.get("*")
    if rate is None:
        if value is None:
            raise MissingParameterError(price.by)
        allowed = tuple(k for k in price.rates if k != "*")
        raise InvalidParameterError(
            price.by,
            f"No price for parameter '{price.by}' = {_key(value)}. "
            f"Priced values: {', '.join(allowed)}",
            allowed,
        )
    assert isinstance(rate, int)
    return rate


def _quantity(entry: ModelEntry, params: Mapping[str, object]) -> Fraction:
    unit = entry.price.unit if isinstance(entry.price, MediaPrice) else "request"
    if unit == "request":
        return Fraction(1)
    name = "duration" if unit == "second" else "n"
    value = params.get(name)
    if value is None:
        spec = entry.param(name)
        value = spec.default if spec is not None else None
    if value is None:
        if unit == "image":
            return Fraction(1)  # one image unless the request asks for more
        raise MissingParameterError(name)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidParameterError(name, f"Invalid value for parameter '{name}': {value!r}")
    try:
        amount = Fraction(str(value).strip())
    except ValueError:
        raise InvalidParameterError(
            name, f"Invalid value for parameter '{name}': {value!r}"
        ) from None
    if amount <= 0:
        raise InvalidParameterError(name, f"Invalid value for parameter '{name}': must be > 0")
    return amount


_SETTLE_QUANTITY = {
    "mtoken": ("tokens", Fraction(1, 1_000_000)),
    "credit": ("credits", Fraction(1)),
}


def _settled(price: MediaPrice, params: Mapping[str, object]) -> Fraction | None:
    """rate x reported quantity when the upstream reported what it bills on, else None."""
    if price.settle_unit is None:
        return None
    name, scale = _SETTLE_QUANTITY[price.settle_unit]
    value = params.get(name)
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        quantity = Fraction(str(value).strip())
    except ValueError:
        return None
    settle = MediaPrice(unit="request", by=price.by, rates=price.settle_rates or {"*": 0})
    return Fraction(_rate(settle, params)) * max(quantity, Fraction(0)) * scale


def quote_media(entry: ModelEntry, params: Mapping[str, object]) -> int:
    """Price in micro-units of a normalised request: quantity x rate x multipliers, rounded up.
    With usage the upstream reported (`tokens`, `credits`) and a settle price, that instead
    (scaled by the settle block's own multipliers when it has them)."""
    price = entry.price
    if not isinstance(price, MediaPrice):
        raise TypeError(f"model {entry.llmid} is priced per token, not per media unit")
    settled = _settled(price, params)
    multipliers = price.multipliers
    if settled is None:
        total = Fraction(_rate(price, params)) * _quantity(entry, params)
    else:
        total = settled
        if price.settle_multipliers is not None:
            multipliers = price.settle_multipliers
    for param, table in multipliers.items():
        value = params.get(param)
        if value is None:
            continue
        factor = _lookup(table, value)
        if factor is not None:
            # via str: 0.1 must mean one tenth, not the nearest binary float
            total *= Fraction(str(factor))
    return math.ceil(total)
