"""Money: integers only.

Amounts are integer micro-units of the deployment currency (1 CNY = 1_000_000). Cents are too
coarse for per-token prices (¥6 per million tokens is 6 micro-units a token), so the ledger
counts micro-units and every charge rounds *up* to a whole one.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

MICROS_PER_UNIT = 1_000_000
MAX_AMOUNT = 10**15  # one billion currency units: far below BIGINT, far above any real balance


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def token_cost(tokens: int, per_mtok: int) -> int:
    """Price of `tokens` at `per_mtok` micro-units per million tokens, rounded up."""
    return ceil_div(tokens * per_mtok, 1_000_000)


def parse_amount(text: str) -> int:
    """'12.5' (currency units) -> 12_500_000 micro-units; rejects fractions below a micro-unit."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {text!r}") from exc
    micros = value * MICROS_PER_UNIT
    if micros != micros.to_integral_value():
        raise ValueError(f"amount {text!r} is finer than one micro-unit")
    if not value.is_finite():
        raise ValueError(f"not an amount: {text!r}")
    if abs(micros) > MAX_AMOUNT:
        raise ValueError(f"amount {text!r} is too large (at most {MAX_AMOUNT // MICROS_PER_UNIT})")
    return int(micros)


def format_amount(micros: int) -> str:
    """12_500_000 -> '12.500000' (exact; no float on the way)."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_UNIT)
    return f"{sign}{whole}.{frac:06d}"


def to_display(micros: int, places: int = 2) -> str:
    q = Decimal(micros) / MICROS_PER_UNIT
    return str(q.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


# Ledger refs the platform writes itself. An operator reference starting with one of these could
# collide with a future order or code (a `topup:<n>` typed by hand would make Alipay's real payment
# of order n look already credited), so operator input may not use them.
RESERVED_REF_PREFIXES = ("topup:", "redeem:", "admin:", "settle:", "cli:")


def reserved_ref(ref: str) -> str | None:
    """The reserved prefix `ref` starts with (case-insensitive), or None."""
    low = ref.lower()
    return next((p for p in RESERVED_REF_PREFIXES if low.startswith(p)), None)
