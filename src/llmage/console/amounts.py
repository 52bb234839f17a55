"""Amounts coming into the console: a JSON string ("10.50") or number (10.5) of currency units.

Anything finer than a micro-unit, zero or negative, non-numeric or a boolean is a 400 naming the
field. (Amounts going out are `models.Money`: an exact decimal string plus integer micro-units.)
"""

from __future__ import annotations

from typing import Annotated

from pydantic import WithJsonSchema

from llmage.domain.errors import InvalidParameter
from llmage.domain.money import parse_amount

# Checked by `amount_in`, not by pydantic: one clear message naming the field for every bad
# value (a union type would answer "amount.str: Input should be a valid string"), and a JSON
# `true` never becomes 1 yuan.
AmountIn = Annotated[
    object,
    WithJsonSchema({"anyOf": [{"type": "string", "examples": ["10.00"]}, {"type": "number"}]}),
]


def amount_in(value: object, param: str = "amount") -> int:
    """Positive micro-units from a request field."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidParameter(f'{param} must be an amount such as "10.00"', param=param)
    text = value if isinstance(value, str) else repr(value)
    try:
        micros = parse_amount(text)
    except ValueError as exc:
        raise InvalidParameter(f"{param}: {exc}", param=param) from None
    if micros <= 0:
        raise InvalidParameter(f"{param} must be above 0", param=param)
    return micros


def price_in(value: object, param: str) -> int:
    """A price from a request field: like `amount_in`, but free (0) is a price too."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidParameter(f'{param} must be an amount such as "2.50"', param=param)
    text = value if isinstance(value, str) else repr(value)
    try:
        micros = parse_amount(text)
    except ValueError as exc:
        raise InvalidParameter(f"{param}: {exc}", param=param) from None
    if micros < 0:
        raise InvalidParameter(f"{param} must not be negative", param=param)
    return micros
