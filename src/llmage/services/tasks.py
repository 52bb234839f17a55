"""Asynchronous generation, submit side: validate → price → store inputs → hold + insert (one
transaction) → the poller takes it from there. Also reads, cancel, delete and estimates."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from llmage.billing.ledger import Hold, Ledger
from llmage.db.money import DuplicateRef, Stmt
from llmage.db.repos.tasks import (
    TaskRepo,
    TaskStateChanged,
    advance_stmt,
    insert_stmt,
    open_tasks_guard,
)
from llmage.domain.catalog import Catalog, ModelEntry, ModelKind
from llmage.domain.clock import now_ms
from llmage.domain.errors import (
    Conflict,
    InsufficientBalance,
    InvalidParameter,
    MissingParameter,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    UnknownModel,
)
from llmage.domain.ids import public_id
from llmage.domain.limits import BucketState, Dim, Refusal
from llmage.domain.media_pricing import quote_media
from llmage.domain.params import normalize_params
from llmage.domain.principal import KeyAuth
from llmage.domain.tasks import MediaSource, TaskDraft, TaskRow, TaskStatus
from llmage.limits.limiter import Limiter, refused
from llmage.observability import metrics
from llmage.services.media import MediaService, request_fingerprint
from llmage.services.routing import ChannelDirectory

log = logging.getLogger(__name__)

_KINDS = {
    "video": (ModelKind.T2V, ModelKind.I2V, ModelKind.R2V),
    "image": (ModelKind.T2I, ModelKind.I2I),
}


@dataclass(frozen=True, slots=True)
class Quote:
    entry: ModelEntry
    model: str
    params: dict[str, Any]
    amount: int


def _has_media(value: Any) -> bool:
    if isinstance(value, list):
        return any(isinstance(v, MediaSource) for v in value)
    return isinstance(value, MediaSource)


class TaskService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        repo: TaskRepo,
        ledger: Ledger,
        media: MediaService,
        directory: ChannelDirectory,
        timeout_seconds: int,
        off_peak_timeout_seconds: int = 0,
        wake: Callable[[], None] = lambda: None,
        on_cancel: Callable[[TaskRow], None] = lambda row: None,
        limits: Limiter | None = None,
    ) -> None:
        self._catalog = catalog
        self._repo = repo
        self._ledger = ledger
        self._media = media
        self._directory = directory
        self._timeout_ms = timeout_seconds * 1000
        self._off_peak_timeout_ms = max(timeout_seconds, off_peak_timeout_seconds) * 1000
        self.wake = wake
        self.on_cancel = on_cancel
        self._limits = limits or Limiter()

    # -- model choice and price ---------------------------------------------------------------

    @staticmethod
    def _wanted(draft: TaskDraft) -> tuple[ModelKind, ...]:
        """One name or family spans text-, image- and reference-to-X entries: the inputs say
        which one a request means."""
        raw = draft.raw
        has_media = any(_has_media(v) for v in raw.values())
        if draft.kind == "image":
            return (ModelKind.I2I,) if has_media else (ModelKind.T2I,)
        if _has_media(raw.get("image_files")) or _has_media(raw.get("video_files")):
            return (ModelKind.R2V,)
        return (ModelKind.I2V,) if has_media else (ModelKind.T2V,)

    def _sibling(self, entry: ModelEntry, want: tuple[ModelKind, ...]) -> ModelEntry | None:
        """The entry of the same family for other inputs: same platform, and a shared model
        name or the same name with its kind swapped (happyhorse-1.0-t2v → happyhorse-1.0-i2v)."""
        names = set(entry.names)
        for kind in want:
            names |= {n.replace(entry.kind.value, kind.value) for n in entry.names}
        for other in self._catalog.entries():
            if other.kind in want and other.platform == entry.platform and names & set(other.names):
                return other
        return None

    def _entry(self, draft: TaskDraft) -> tuple[ModelEntry, str]:
        kinds = _KINDS[draft.kind]
        want = self._wanted(draft)
        if draft.llmid:
            entry = self._catalog.by_llmid(draft.llmid)
            if entry is None:
                raise UnknownModel(draft.llmid)
            if entry.kind not in kinds:
                raise InvalidParameter(
                    f"llmid '{draft.llmid}' is a {entry.kind.value} model, not {draft.kind}",
                    param="llmid",
                )
            if entry.kind in (ModelKind.T2V, ModelKind.T2I) and entry.kind not in want:
                # Seed 000 itself sends first-frame images to a text-to-video llmid: serve the
                # request with the same family's image-to-video entry.
                entry = self._sibling(entry, want) or entry
            model = draft.model
            if model is None:
                return entry, entry.default_name
            if model in entry.names:
                return entry, model
            # A `model` that belongs to another entry of the kind the inputs need (seed 000's
            # seedance example): the model named explicitly wins, at its own price.
            for other in self._catalog.by_name(model):
                if other.kind in want:
                    return other, model
            raise InvalidParameter(
                f"model '{model}' is not offered under llmid '{draft.llmid}'",
                param="model",
                allowed=entry.names,
            )
        if not draft.model:
            raise MissingParameter("model")
        by_id = self._catalog.by_llmid(draft.model)
        if by_id is not None and by_id.kind in kinds:
            return by_id, by_id.default_name
        found = [e for e in self._catalog.by_name(draft.model) if e.kind in kinds]
        if not found:
            allowed = sorted(
                {n for e in self._catalog.entries() if e.kind in kinds for n in e.names}
            )
            raise UnknownModel(draft.model, allowed)
        for entry in found:
            if entry.kind in want:
                return entry, draft.model
        return found[0], draft.model

    def quote(self, draft: TaskDraft) -> Quote:
        entry, model = self._entry(draft)
        params = normalize_params(entry.params, draft.raw)
        slots = {spec.name for spec in entry.params if spec.is_file}
        for name, value in params.items():
            if name not in slots and _has_media(value):
                raise InvalidParameter(
                    f"'{name}' is not a file input of model '{model}'",
                    param=name,
                    allowed=sorted(slots) or None,
                )
        amount = quote_media(entry, {**params, "model": model})
        return Quote(entry, model, params, amount)

    # -- submit ---------------------------------------------------------------------------------

    async def submit(
        self, auth: KeyAuth, draft: TaskDraft, *, dialect: str, idempotency_key: str | None = None
    ) -> TaskRow:
        q = self.quote(draft)
        if auth.models is not None and not ({q.model, q.entry.llmid} & auth.models):
            raise PermissionDenied(f"This API key may not use model '{q.model}'", param="model")
        if not await self._directory.candidates((q.model, q.entry.llmid), platform=draft.platform):
            raise ServiceUnavailable(f"No upstream channel is serving model '{q.model}'")
        fingerprint = request_fingerprint(q.model, {**q.params, **draft.extra})
        if idempotency_key:
            existing = await self._repo.by_idempotency(auth.user_id, idempotency_key)
            if existing is not None:
                return self._replay(existing, fingerprint)
        # A submit is a request (rpm); open tasks are counted in the submit transaction below.
        await self._limits.admit(auth, (q.model, q.entry.llmid), concurrent=False)
        params, inputs = await self._media.materialize(q.entry.params, q.params)
        # Vendor extras pass through as plain values; they never shadow a parameter or a file.
        params.update({k: v for k, v in draft.extra.items() if k not in params and k not in inputs})
        now = now_ms()
        task_id = public_id()
        values = {
            "id": task_id,
            "user_id": auth.user_id,
            "key_id": auth.key_id,
            "kind": draft.kind,
            "llmid": q.entry.llmid,
            "model": q.model,
            "dialect": dialect,
            "platform": draft.platform,
            "params": params,
            "inputs": inputs,
            "quoted": q.amount,
            "idempotency_key": idempotency_key,
            "request_hash": fingerprint,
            "callback_url": draft.callback_url,
            "remix_of": draft.remix_of,
            "now": now,
            "deadline_at": now + self._deadline_ms(q.params),
        }
        hold, stmts = self._ledger.hold_program(
            user_id=auth.user_id,
            key_id=auth.key_id,
            amount=q.amount,
            purpose="task",
            ref=task_id,
        )
        values["hold_id"] = hold.id
        try:
            await self._ledger.run(
                [*stmts, insert_stmt(values), *self._open_task_guards(auth)], auth.user_id
            )
        except DuplicateRef:
            # A concurrent submit with the same Idempotency-Key won; its hold is the only one.
            if idempotency_key:
                existing = await self._repo.by_idempotency(auth.user_id, idempotency_key)
                if existing is not None:
                    return self._replay(existing, fingerprint)
            raise
        except InsufficientBalance:
            metrics.HOLDS.labels("rejected").inc()
            raise
        metrics.HOLDS.labels("opened").inc()
        row = await self._repo.get(task_id)
        self.wake()
        assert row is not None
        return row

    def _deadline_ms(self, params: Mapping[str, Any]) -> int:
        """How long the task may stay open: an off-peak run (Vidu) may start hours later and
        lasts up to 48 h upstream (PROVIDERS.md §1.2), everything else the normal timeout."""
        off_peak = params.get("off_peak")
        if off_peak is True or str(off_peak).strip().upper() in ("Y", "TRUE"):
            return self._off_peak_timeout_ms
        return self._timeout_ms

    @staticmethod
    def _open_task_guards(auth: KeyAuth) -> list[Stmt]:
        guards = []
        for column, subject, policy in (
            ("key_id", auth.key_id, auth.key_limits),
            ("user_id", auth.user_id, auth.user_limits),
        ):
            limit = policy.base.tasks if policy is not None else None
            if limit is not None:

                def refusal(limit: int = limit) -> Exception:
                    # A slot frees when one of them finishes: minutes, not milliseconds.
                    full = BucketState(Dim.TASKS, limit, 0, 0.0)
                    return refused(Refusal(Dim.TASKS, limit, 5000.0, (full,)))

                guards.append(open_tasks_guard(auth.user_id, column, subject, limit, refusal))
        return guards

    @staticmethod
    def _replay(existing: TaskRow, fingerprint: str) -> TaskRow:
        if existing.request_hash != fingerprint:
            raise Conflict(
                "Idempotency-Key was already used with a different request body",
                param="Idempotency-Key",
            )
        return existing

    # -- reads and changes by the owner ---------------------------------------------------------

    async def get(self, auth: KeyAuth, task_id: str, *, kind: str | None = None) -> TaskRow:
        row = await self._repo.get(task_id, auth.user_id)
        if row is None or (kind and row.kind != kind):
            # Another user's task is exactly as absent as a task that never existed.
            raise NotFound(f"No task '{task_id}'", param="task_id")
        return row

    async def wait(self, auth: KeyAuth, task_id: str, max_wait: float) -> TaskRow:
        """For synchronous APIs over async work (images): the task once terminal, or as it
        is when `max_wait` seconds have passed. Polls the database: works across instances."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_wait
        delay = 0.05
        while True:
            row = await self.get(auth, task_id)
            if row.status.terminal or loop.time() >= deadline:
                return row
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    async def page(
        self, auth: KeyAuth, *, kind: str | None, limit: int, after: str | None, ascending: bool
    ) -> list[TaskRow]:
        return await self._repo.page(
            auth.user_id, kind=kind, limit=limit, after=after, ascending=ascending
        )

    async def cancel(self, auth: KeyAuth, task_id: str, *, kind: str | None = None) -> TaskRow:
        """Stop an open task and release its whole hold; a finished task is left as it is."""
        return await self._cancel(auth.user_id, task_id, kind, "Cancelled by the user")

    async def cancel_by_admin(self, task_id: str) -> TaskRow:
        """The same cancel for any user's task (the console's admin task list)."""
        row = await self._repo.get(task_id)
        if row is None:
            raise NotFound(f"No task '{task_id}'", param="task_id")
        return await self._cancel(row.user_id, task_id, None, "Cancelled by an administrator")

    async def owned(self, user_id: int, task_id: str) -> TaskRow:
        """A task of this user (a console session's view of its own tasks), else NotFound."""
        return await self._owned(user_id, task_id, None)

    async def _owned(self, user_id: int, task_id: str, kind: str | None) -> TaskRow:
        row = await self._repo.get(task_id, user_id)
        if row is None or (kind and row.kind != kind):
            raise NotFound(f"No task '{task_id}'", param="task_id")
        return row

    async def _cancel(self, user_id: int, task_id: str, kind: str | None, why: str) -> TaskRow:
        for _ in range(5):
            row = await self._owned(user_id, task_id, kind)
            if row.status.terminal:
                return row
            hold_stmts = self._ledger.settle_program(
                Hold(row.hold_id, row.user_id, row.key_id, row.quoted), 0
            )
            move = advance_stmt(
                row.id,
                row.status,
                {
                    "status": TaskStatus.CANCELLED.value,
                    "error_code": "cancelled",
                    "error_message": why,
                    "updated_at": now_ms(),
                    "finished_at": now_ms(),
                    "charged": 0,
                },
            )
            try:
                await self._ledger.run([move, *hold_stmts], row.user_id)
            except TaskStateChanged:
                await asyncio.sleep(0.01)  # the poller moved it meanwhile: look again
                continue
            metrics.HOLDS.labels("released").inc()
            self.on_cancel(row)  # tell the upstream to stop, best effort
            return await self._owned(user_id, task_id, kind)
        raise Conflict("The task is changing state; try again", param="task_id")

    async def delete(self, auth: KeyAuth, task_id: str, *, kind: str | None = None) -> TaskRow:
        """OpenAI's DELETE: cancel if still running, then hide it from lists."""
        row = await self.cancel(auth, task_id, kind=kind)
        await self._repo.mark_deleted(row.id, auth.user_id, now_ms())
        return row
