"""The seam between adapters and the network: `Upstream.send(request) -> reply`.

`HttpUpstream` sends through the one shared Transport (providers/transport.py: pooled HTTP/1.1,
deadlines, no resend of a POST). `MockUpstream` answers from a function, in process: an adapter
is tested on recorded replies with no network, as httpx's MockTransport allows. `RoutedUpstream`
sends URLs of a scheme (the built-in `sim://`) to an in-process handler, the rest over HTTP.

A failure to get a reply raises `TransportFailure`, which says whether the request may have
reached the upstream (`maybe_sent`): a create that may have been received is never resent; its
outcome is unknown and goes to recovery (services/poller.py).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.transport import HttpError, Transport
from llmage.providers.wire import UpstreamReply, UpstreamRequest


class TransportFailure(UpstreamError):
    """No reply. `maybe_sent` is False only when the request provably never left (refused
    connection, connect timeout): then even a create may be sent again."""

    def __init__(self, kind: UpstreamKind, message: str, *, maybe_sent: bool) -> None:
        super().__init__(kind, message)
        self.maybe_sent = maybe_sent


class Upstream(Protocol):
    async def send(
        self, request: UpstreamRequest, *, deadline: float, max_bytes: int
    ) -> UpstreamReply: ...


# Transport failures raised before a byte of the request was written (providers/http1.py).
_NOT_SENT_MARKERS = ("upstream connect timed out", "upstream unreachable")


def _never_sent(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, HttpError) and str(cause).startswith(_NOT_SENT_MARKERS)


class HttpUpstream:
    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def send(
        self, request: UpstreamRequest, *, deadline: float, max_bytes: int
    ) -> UpstreamReply:
        resp = None
        try:
            async with asyncio.timeout(deadline):
                resp = await self._transport.request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    data=request.body,
                    deadline=time.monotonic() + deadline,
                )
                parts: list[bytes] = []
                size = 0
                async for chunk in resp.chunks():
                    size += len(chunk)
                    if size > max_bytes:
                        resp.close()
                        raise UpstreamError(
                            UpstreamKind.UPSTREAM_BUG,
                            f"Upstream reply larger than {max_bytes} bytes",
                            upstream_status=resp.status,
                        )
                    parts.append(chunk)
                resp.release()
                return UpstreamReply(resp.status, dict(resp.headers), b"".join(parts))
        except TimeoutError:
            if resp is not None:
                resp.close()
            raise TransportFailure(
                UpstreamKind.TIMEOUT, "Upstream did not answer in time", maybe_sent=True
            ) from None
        except HttpError as exc:
            if resp is not None:
                resp.close()
            raise TransportFailure(
                UpstreamKind.RETRYABLE, "Upstream connection broke", maybe_sent=True
            ) from exc
        except TransportFailure:
            raise
        except UpstreamError as exc:
            if exc.kind is UpstreamKind.UPSTREAM_BUG:
                raise
            # Transport.request wraps connect and header-read failures.
            raise TransportFailure(
                exc.kind, exc.message, maybe_sent=not _never_sent(exc)
            ) from exc.__cause__


Handler = Callable[[UpstreamRequest], Awaitable[UpstreamReply] | UpstreamReply]


class MockUpstream:
    """Answers every request with `handler(request)` (sync or async) and records the requests.
    A handler may raise TransportFailure to play a lost connection."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[UpstreamRequest] = []

    async def send(
        self, request: UpstreamRequest, *, deadline: float, max_bytes: int
    ) -> UpstreamReply:
        self.requests.append(request)
        reply = self._handler(request)
        if inspect.isawaitable(reply):
            reply = await reply
        assert isinstance(reply, UpstreamReply)
        if len(reply.body) > max_bytes:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Upstream reply too large")
        return reply


class RoutedUpstream:
    """In-process upstreams by URL scheme (`sim`), HTTP for everything else."""

    def __init__(self, default: Upstream, schemes: Mapping[str, Upstream]) -> None:
        self._default = default
        self._schemes = dict(schemes)

    async def send(
        self, request: UpstreamRequest, *, deadline: float, max_bytes: int
    ) -> UpstreamReply:
        target = self._schemes.get(urlsplit(request.url).scheme, self._default)
        return await target.send(request, deadline=deadline, max_bytes=max_bytes)
