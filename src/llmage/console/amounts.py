"""Money at the console's edge: amounts in as currency units, out as exact strings plus ints.

In: a JSON string ("10.50") or number (10.5) of currency units; anything finer than a micro-unit,
negative, non-numeric or a boolean is a 400 naming the field. Out: every amount is given twice, as
a string in currency units with at least two decimals and no rounding ("0.000006" for a
six-micro-unit token charge) and as integer micro-units (`*_micros`) for scripts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import WithJsonSchema

from llmage.domain.errors import InvalidParameter
from llmage.domain.money import MICROS_PER_UNIT, parse_amount

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


def amount_out(micros: int) -> str:
    """12_500_000 -> '12.50'; 6 -> '0.000006'; exact, never rounded."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_UNIT)
    digits = f"{frac:06d}".rstrip("0")
    return f"{sign}{whole}.{digits.ljust(2, '0')}"
