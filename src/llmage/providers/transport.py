"""The one HTTP client every upstream request goes through: pooled keep-alive connections,
connect and read timeouts, bodies streamed as they arrive (see http1.py for why it is ours)."""

from __future__ import annotations

import re
from collections.abc import Mapping

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.http1 import Http1Pool, HttpError, HttpTimeout, Response

_SECRETISH = re.compile(
    r"(?<![A-Za-z0-9])(sk-|Bearer\s+|AKLT|ak-)[A-Za-z0-9._\-*]{4,}", re.IGNORECASE
)

__all__ = ["HttpError", "HttpTimeout", "Response", "Transport", "scrub"]


def scrub(text: str, limit: int = 500) -> str:
    """Upstream text shown to a client loses anything that looks like a credential."""
    return _SECRETISH.sub("[redacted]", text)[:limit]


class Transport:
    def __init__(self, *, pool_size: int, connect_timeout: float, read_timeout: float) -> None:
        self._pool = Http1Pool(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_idle_per_host=pool_size,
        )

    async def request(
        self, method: str, url: str, *, headers: Mapping[str, str], data: bytes = b""
    ) -> Response:
        """Send; map transport failures to UpstreamError. Caller must release the response."""
        try:
            return await self._pool.request(method, url, {"User-Agent": "llmage", **headers}, data)
        except HttpTimeout as exc:
            raise UpstreamError(UpstreamKind.TIMEOUT, "Upstream timed out") from exc
        except HttpError as exc:
            raise UpstreamError(UpstreamKind.RETRYABLE, f"Upstream unreachable: {exc}") from exc

    async def close(self) -> None:
        await self._pool.close()
