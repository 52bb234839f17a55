"""The one HTTP client every upstream request goes through: pooled keep-alive connections,
connect and idle timeouts, a total deadline per call (and a maximum gap between a stream's
events), bodies streamed as they arrive (see http1.py for why it is ours and what it resends).

Transport failures become `UpstreamError`s here, in one place, with fixed messages: no address,
no exception text, nothing the upstream sent.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.redaction import scrub
from llmage.providers.http1 import (
    Http1Pool,
    HttpDeadline,
    HttpError,
    HttpStalled,
    HttpTimeout,
    Response,
)

__all__ = [
    "HttpDeadline",
    "HttpError",
    "HttpStalled",
    "HttpTimeout",
    "Response",
    "Transport",
    "scrub",
    "upstream_error",
]


def upstream_error(exc: HttpError, *, answered: bool) -> UpstreamError:
    """A transport failure as an upstream error. `answered`: the response head had arrived
    (the upstream has the request and may be working on it: not worth another channel)."""
    if isinstance(exc, HttpStalled):
        return UpstreamError(UpstreamKind.TIMEOUT, "Upstream stream stalled")
    if isinstance(exc, HttpDeadline):
        return UpstreamError(UpstreamKind.TIMEOUT, "Upstream did not finish within the deadline")
    if isinstance(exc, HttpTimeout):
        return UpstreamError(UpstreamKind.TIMEOUT, "Upstream timed out")
    if answered:
        return UpstreamError(UpstreamKind.TIMEOUT, "Upstream connection broke mid-response")
    return UpstreamError(UpstreamKind.RETRYABLE, "Upstream unreachable")


class Transport:
    def __init__(
        self,
        *,
        pool_size: int,
        connect_timeout: float,
        read_timeout: float,
        total_timeout: float = 600.0,
        stream_total_timeout: float = 1800.0,
        stream_gap_timeout: float = 300.0,
        keepalive_expiry: float = 4.0,
    ) -> None:
        self._pool = Http1Pool(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_idle_per_host=pool_size,
            keepalive_expiry=keepalive_expiry,
        )
        self._total = total_timeout
        self._stream_total = stream_total_timeout
        self._gap = stream_gap_timeout

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes = b"",
        stream: bool = False,
        deadline: float | None = None,
    ) -> Response:
        """Send; map transport failures to UpstreamError. Caller must release the response.

        The call ends at the transport's total for its kind (stream or not), or at `deadline`
        (time.monotonic()) if that comes first: a caller's own budget across several calls."""
        end = time.monotonic() + (self._stream_total if stream else self._total)
        if deadline is not None and deadline < end:
            end = deadline
        try:
            return await self._pool.request(
                method,
                url,
                {"User-Agent": "llmage", **headers},
                data,
                deadline=end,
                gap=self._gap if stream else None,
            )
        except HttpError as exc:
            raise upstream_error(exc, answered=False) from exc

    async def close(self) -> None:
        await self._pool.close()
