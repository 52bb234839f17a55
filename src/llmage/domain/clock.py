"""The platform's clock: epoch milliseconds, the unit every stored timestamp uses."""

from __future__ import annotations

import time


def now_ms() -> int:
    return int(time.time() * 1000)
