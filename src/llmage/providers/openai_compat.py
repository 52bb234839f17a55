"""Any OpenAI-compatible chat endpoint (DashScope compatible-mode, Ark, DeepSeek, OpenAI, ...).

The upstream body carries the documented OpenAI fields, the vendor extensions below and those a
channel's admin allows (`extra_fields` option); nothing else a client sends goes upstream.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from llmage.domain.chat import forwardable
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.contract import Channel
from llmage.providers.transport import HttpError, Transport, scrub, upstream_error

log = logging.getLogger(__name__)

# Vendor fields of the OpenAI-compatible endpoints we relay to (PROVIDERS.md §9): DashScope's
# thinking switches, Ark's `thinking`, and sampling knobs several of them accept.
EXTRA_FIELDS = frozenset(
    {"enable_thinking", "thinking_budget", "thinking", "top_k", "repetition_penalty", "min_p"}
)
# Upstream error text kept in memory at most (the client sees far less, once redacted).
_MESSAGE_CAP = 4000

_POLICY_MARKERS = ("data_inspection_failed", "content_filter", "sensitive", "moderation")
_QUOTA_MARKERS = (
    "insufficient_quota",
    "arrearage",
    "accountoverdue",
    "exceeded your current quota",
)


def classify(status: int, body: bytes) -> UpstreamError:
    """Map an upstream HTTP error to one error kind; only user-caused errors keep their text."""
    text = body.decode("utf-8", "replace")
    message = text
    try:
        parsed = orjson.loads(body)
        err = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("code") or text)
    except orjson.JSONDecodeError:
        pass
    low = text.lower()
    # Out-of-money answers come as 400 (DashScope Arrearage), 402, 403 (Ark AccountOverdue) or
    # 429: our upstream account's problem, worth another channel, never the user's fault.
    if status == 402 or (status in (400, 403, 429) and any(m in low for m in _QUOTA_MARKERS)):
        return UpstreamError(
            UpstreamKind.QUOTA, "Upstream account quota exhausted", upstream_status=status
        )
    if status in (401, 403):
        return UpstreamError(
            UpstreamKind.AUTH, "Upstream rejected our credentials", upstream_status=status
        )
    # Not cut to its final length here: the service redacts the channel's secrets first (a cut
    # could leave half a key that no longer matches), then cuts.
    message = scrub(message, _MESSAGE_CAP)
    if any(m in low for m in _POLICY_MARKERS) and 400 <= status < 500:
        return UpstreamError(UpstreamKind.CONTENT_POLICY, message, upstream_status=status)
    if status in (400, 413, 422):
        return UpstreamError(UpstreamKind.BAD_REQUEST, message, upstream_status=status)
    if status == 429 or status >= 500 or status == 404:
        return UpstreamError(
            UpstreamKind.RETRYABLE, f"Upstream error {status}", upstream_status=status
        )
    return UpstreamError(
        UpstreamKind.UPSTREAM_BUG, f"Unexpected upstream status {status}", upstream_status=status
    )


class OpenAICompatProvider:
    name = "openai_compat"

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @staticmethod
    def _url(channel: Channel) -> str:
        return channel.base_url.rstrip("/") + "/chat/completions"

    @staticmethod
    def _headers(channel: Channel, stream: bool) -> Mapping[str, str]:
        h = {"Content-Type": "application/json"}
        if channel.api_key:
            h["Authorization"] = f"Bearer {channel.api_key}"
        if stream:
            h["Accept"] = "text/event-stream"
        return h

    @staticmethod
    def _body(channel: Channel, body: dict[str, Any], stream: bool) -> bytes:
        extra = channel.options.get("extra_fields")
        allowed = EXTRA_FIELDS.union(extra) if isinstance(extra, list) else EXTRA_FIELDS
        out, dropped = forwardable(body, allowed)
        if dropped:
            log.debug("not sent upstream: %s", ", ".join(n[:40] for n in dropped[:20]))
        out["model"] = channel.upstream_model(body["model"])
        if stream:
            # Always ask for usage: it is what we bill from. The dialect drops the usage chunk
            # again if the client did not ask for it.
            opts = dict(out.get("stream_options") or {})
            opts["include_usage"] = True
            out["stream_options"] = opts
        return orjson.dumps(out)

    async def chat(
        self, channel: Channel, body: dict[str, Any], *, deadline: float | None = None
    ) -> dict[str, Any]:
        resp = await self._transport.request(
            "POST",
            self._url(channel),
            headers=self._headers(channel, False),
            data=self._body(channel, body, False),
            deadline=deadline,
        )
        try:
            raw = await resp.read()  # closes the connection itself on failure or cancel
        except HttpError as exc:
            raise upstream_error(exc, answered=True) from exc
        if resp.status != 200:
            raise classify(resp.status, raw)
        try:
            result = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Upstream sent invalid JSON") from exc
        if not isinstance(result, dict) or "choices" not in result:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Upstream reply is not a completion")
        return result

    async def chat_stream(
        self, channel: Channel, body: dict[str, Any], *, deadline: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        resp = await self._transport.request(
            "POST",
            self._url(channel),
            headers=self._headers(channel, True),
            data=self._body(channel, body, True),
            stream=True,
            deadline=deadline,
        )
        finished = False
        try:
            if resp.status != 200:
                raise classify(resp.status, await resp.read())
            # Event by event as bytes arrive: nothing is held back beyond one SSE line.
            async for payload in resp.events():
                if payload == b"[DONE]":
                    finished = True
                    break
                try:
                    chunk = orjson.loads(payload)
                except orjson.JSONDecodeError as exc:
                    raise UpstreamError(
                        UpstreamKind.UPSTREAM_BUG, "Upstream sent a bad chunk"
                    ) from exc
                if isinstance(chunk, dict) and "error" in chunk and "choices" not in chunk:
                    err = chunk["error"]
                    msg = err.get("message") if isinstance(err, dict) else str(err)
                    raise UpstreamError(UpstreamKind.UPSTREAM_BUG, scrub(str(msg), _MESSAGE_CAP))
                yield chunk
        except HttpError as exc:
            raise upstream_error(exc, answered=True) from exc
        finally:
            if finished:
                # Read the body's last bytes (the chunked terminator) to keep the connection.
                with contextlib.suppress(HttpError):
                    _trailing = [chunk async for chunk in resp.chunks()]  # dropped
                resp.release()
            else:
                # Early close (client went away): the upstream must not generate for nobody.
                resp.close()
