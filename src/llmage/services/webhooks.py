"""Task webhooks: POST the native task view to `callback_url` when a task ends, signed with
HMAC-SHA256, retried with exponential backoff, only through the guarded fetcher.

Signature header: `X-Llmage-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
The secret is the task owner's own (`whsec_...`, see services/webhook_secrets.py; shown and
rotated in the console): receivers recompute the HMAC with it and reject stale timestamps. It is
read at each attempt, so a callback retried after a rotation carries the new signature.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable

import orjson

from llmage.db.repos.tasks import TaskRepo
from llmage.db.repos.webhooks import WebhookRepo
from llmage.domain.clock import now_ms
from llmage.net.fetch import FetchFailed, FetchRejected, GuardedFetcher
from llmage.services.background import BackgroundLoop
from llmage.services.media import MediaService
from llmage.services.task_views import native_view

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class WebhookSender(BackgroundLoop):
    name = "webhooks"

    def __init__(
        self,
        *,
        repo: WebhookRepo,
        tasks: TaskRepo,
        media: MediaService,
        fetcher: GuardedFetcher,
        secret_for: Callable[[int], Awaitable[bytes]],
        base_url: str,
        retry_base_seconds: float = 5.0,
        idle_seconds: float = 1.0,
    ) -> None:
        super().__init__()
        self._repo = repo
        self._tasks = tasks
        self._media = media
        self._fetcher = fetcher
        self._secret_for = secret_for
        self._base_url = base_url
        self._retry_base = retry_base_seconds
        self._idle = idle_seconds

    async def _loop(self) -> None:
        while True:
            try:
                now = now_ms()
                batch = await self._repo.lease(now, now + 60_000, 50)
                await asyncio.gather(
                    *(self._send(d.id, d.task_id, d.url, d.attempts) for d in batch)
                )
                if batch:
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("webhook loop failed")
            await asyncio.sleep(self._idle)

    async def _send(self, delivery_id: int, task_id: str, url: str, attempts: int) -> None:
        row = await self._tasks.get(task_id)
        if row is None:
            return
        body = orjson.dumps(native_view(row, self._media, self._base_url))
        ts = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Llmage-Event": "task.finished",
            "X-Llmage-Delivery": str(delivery_id),
            "X-Llmage-Signature": signature(await self._secret_for(row.user_id), body, ts),
        }
        error: str | None = None
        try:
            status = await self._fetcher.post_json(url, body, headers)
            if 200 <= status < 300:
                await self._repo.finish(
                    delivery_id,
                    now=now_ms(),
                    delivered=True,
                    payload=body.decode(),
                    error=None,
                    retry_at=None,
                )
                return
            error = f"HTTP {status}"
        except (FetchRejected, FetchFailed) as exc:
            error = str(exc)
        retry = None
        if attempts < MAX_ATTEMPTS:
            retry = now_ms() + int(self._retry_base * 1000 * 2 ** (attempts - 1))
        log.warning("webhook for task %s failed (%s), attempt %d", task_id, error, attempts)
        await self._repo.finish(
            delivery_id,
            now=now_ms(),
            delivered=False,
            payload=body.decode(),
            error=error,
            retry_at=retry,
        )
