"""Chat, top to bottom: authenticate → resolve model → route → hold → call → settle.

Every dialect calls `complete` or `stream` with a canonical request and renders the result.

A request has one deadline from the moment its hold is taken (the upstream total for its kind),
shared by every channel it fails over to: the sweeper's idea of "abandoned" rests on it. Upstream
error text leaves through here only once the channel's credentials and address are redacted from
it; an error raised after the hold carries the usage id of the record that tells what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmage.billing.ledger import Hold, HoldAlreadySettled, Ledger
from llmage.db.money import DuplicateRef, Stmt
from llmage.db.repos.usage import UsageRecord, usage_insert
from llmage.domain.catalog import Catalog, ChatPrice, ModelEntry
from llmage.domain.chat import ChatRequest, Usage
from llmage.domain.clock import now_ms
from llmage.domain.errors import (
    InsufficientBalance,
    LlmageError,
    NotFound,
    PermissionDenied,
    ServiceUnavailable,
    UnknownModel,
    UpstreamError,
    UpstreamKind,
)
from llmage.domain.ids import public_id
from llmage.domain.money import token_cost
from llmage.domain.principal import KeyAuth
from llmage.domain.tokens import TokenTally, estimate_tokens, prompt_text, prompt_token_ceiling
from llmage.limits.limiter import Admission, Limiter
from llmage.observability import metrics
from llmage.providers.contract import Channel
from llmage.providers.registry import ProviderRegistry
from llmage.services.failover import Failover
from llmage.services.routing import ChannelDirectory

log = logging.getLogger(__name__)

_PROMPT_EXTRAS = ("tools", "functions", "tool_choice", "response_format")
_NO_CAP = contextlib.nullcontext()

# Children bound once: `labels()` takes a lock and builds a tuple on every call.
_HOLDS_OPENED = metrics.HOLDS.labels("opened")
_HOLDS_CAPTURED = metrics.HOLDS.labels("captured")
_HOLDS_RELEASED = metrics.HOLDS.labels("released")
_CHARGED_CHAT = metrics.CHARGED.labels("chat")
_TOKENS: dict[str, tuple[Any, Any]] = {}


def _tokens_of(model: str) -> tuple[Any, Any]:
    pair = _TOKENS.get(model)
    if pair is None:  # one pair per catalog model
        pair = (metrics.TOKENS.labels(model, "prompt"), metrics.TOKENS.labels(model, "completion"))
        _TOKENS[model] = pair
    return pair


@dataclass(slots=True)
class ChatContext:
    """Everything settled about a request before the upstream call."""

    auth: KeyAuth
    req: ChatRequest
    entry: ModelEntry
    model: str  # concrete catalog model name, shown to the client
    price: ChatPrice
    hold: Hold
    usage_id: str
    dialect: str
    started: float
    deadline: float  # time.monotonic() by which every upstream call of this request ends
    channel: Channel | None = None
    admission: Admission | None = None  # rate/concurrency limits: ended at settlement


@dataclass(slots=True)
class ChatResult:
    usage_id: str
    model: str
    body: dict[str, Any]
    usage: Usage


@dataclass(slots=True)
class StreamMeter:
    """What a stream relayed so far: enough to bill it if it is cut before upstream usage."""

    usage: Usage | None = None
    relayed: TokenTally = field(default_factory=TokenTally)


@dataclass(slots=True)
class ChatStream:
    usage_id: str
    model: str
    chunks: AsyncIterator[dict[str, Any]]
    meter: StreamMeter = field(default_factory=StreamMeter)


class ChatService:
    def __init__(
        self,
        *,
        catalog: Catalog,
        directory: ChannelDirectory,
        providers: ProviderRegistry,
        ledger: Ledger,
        default_max_tokens: int,
        attachment_tokens: int,
        call_timeout: float = 600.0,
        stream_timeout: float = 1800.0,
        limits: Limiter | None = None,
        slot_wait: float = 5.0,
    ) -> None:
        self._catalog = catalog
        self._directory = directory
        self._providers = providers
        self._ledger = ledger
        self._default_max_tokens = default_max_tokens
        self._attachment_tokens = attachment_tokens
        self._call_timeout = call_timeout
        self._stream_timeout = stream_timeout
        self._limits = limits or Limiter()
        self._failover = Failover(directory.health, wait=slot_wait)

    # -- before the upstream call -------------------------------------------------------------

    def _resolve(self, auth: KeyAuth, req: ChatRequest) -> tuple[ModelEntry, str, ChatPrice]:
        found = self._catalog.chat_model(req.model)
        if found is None:
            raise UnknownModel(req.model)
        entry, model = found
        if auth.models is not None and not ({req.model, model, entry.llmid} & auth.models):
            raise PermissionDenied(f"This API key may not use model '{req.model}'", param="model")
        assert isinstance(entry.price, ChatPrice)
        return entry, model, entry.price

    def budget(self, req: ChatRequest, entry: ModelEntry) -> tuple[int, int]:
        """Worst-case (prompt, completion) tokens: every prompt byte a token, and the whole
        completion budget per choice."""
        max_tokens = req.max_tokens or entry.max_output_tokens or self._default_max_tokens
        # Tool and schema definitions are prompt tokens too.
        extras = "".join(
            orjson.dumps(req.body[k]).decode() for k in _PROMPT_EXTRAS if req.body.get(k)
        )
        prompt = prompt_token_ceiling(req.body["messages"], self._attachment_tokens, extras)
        return prompt, max_tokens * req.n

    @staticmethod
    def _cost(budget: tuple[int, int], price: ChatPrice) -> int:
        return token_cost(budget[0], price.input_per_mtok) + token_cost(
            budget[1], price.output_per_mtok
        )

    def quote(self, req: ChatRequest, entry: ModelEntry, price: ChatPrice) -> int:
        return self._cost(self.budget(req, entry), price)

    async def _prepare(
        self, auth: KeyAuth, req: ChatRequest, dialect: str, platform: str | None
    ) -> tuple[ChatContext, list[Channel]]:
        started = time.perf_counter()
        entry, model, price = self._resolve(auth, req)
        channels = await self._directory.candidates((model, entry.llmid), platform=platform)
        if not channels:
            if platform is not None and platform not in await self._directory.platforms():
                raise NotFound(f"Unknown platform '{platform}'", param="platform")
            raise ServiceUnavailable(f"No upstream channel is serving model '{model}'")
        if req.max_tokens is None:
            # The hold covers this many completion tokens, so the upstream must not exceed it.
            req.body["max_tokens"] = entry.max_output_tokens or self._default_max_tokens
        req.body["model"] = model
        usage_id = public_id()
        tokens = self.budget(req, entry)
        # Limits before money: a refused request never touches the database.
        admission = await self._limits.admit(auth, (model, entry.llmid), tokens=sum(tokens))
        try:
            hold = await self._ledger.hold(
                user_id=auth.user_id,
                key_id=auth.key_id,
                amount=self._cost(tokens, price),
                purpose="chat",
                ref=usage_id,
            )
        except BaseException as exc:
            if admission is not None:
                admission.done(0)
            if isinstance(exc, InsufficientBalance):
                metrics.HOLDS.labels("rejected").inc()
            raise
        _HOLDS_OPENED.inc()
        metrics.OPEN_HOLDS.inc()
        budget = self._stream_timeout if req.stream else self._call_timeout
        deadline = time.monotonic() + budget
        ctx = ChatContext(
            auth, req, entry, model, price, hold, usage_id, dialect, started, deadline
        )
        ctx.admission = admission
        return ctx, channels

    # -- settlement ---------------------------------------------------------------------------

    def _settlement(
        self,
        ctx: ChatContext,
        usage: Usage,
        *,
        status: str,
        estimated: bool,
        error: str | None,
        charge: bool = True,
    ) -> list[Stmt]:
        amount = 0
        if charge:
            amount = min(
                token_cost(usage.prompt_tokens, ctx.price.input_per_mtok)
                + token_cost(usage.completion_tokens, ctx.price.output_per_mtok),
                ctx.hold.amount,
            )
        record = UsageRecord(
            id=ctx.usage_id,
            user_id=ctx.auth.user_id,
            key_id=ctx.auth.key_id,
            hold_id=ctx.hold.id,
            model=ctx.model,
            llmid=ctx.entry.llmid,
            channel_id=ctx.channel.id if ctx.channel else None,
            dialect=ctx.dialect,
            stream=ctx.req.stream,
            status=status,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cached_tokens=usage.cached_tokens,
            amount=amount,
            estimated=estimated,
            latency_ms=int((time.perf_counter() - ctx.started) * 1000),
            error=error,
            created_at=now_ms(),
        )
        if ctx.admission is not None:  # the tokens really used correct the tpm buckets
            ctx.admission.done(usage.prompt_tokens + usage.completion_tokens)
        metrics.OPEN_HOLDS.dec()
        (_HOLDS_CAPTURED if amount else _HOLDS_RELEASED).inc()
        if amount:
            _CHARGED_CHAT.inc(amount)
            prompt, completion = _tokens_of(ctx.model)
            prompt.inc(usage.prompt_tokens)
            completion.inc(usage.completion_tokens)
        return self._ledger.settle_program(ctx.hold, amount, [usage_insert(record)])

    def _fallback(self, ctx: ChatContext, exc: BaseException) -> list[Stmt]:
        """If a settlement cannot be written (it should not happen), the hold must still end:
        release it with a bare usage record that says why."""
        log.error("settlement of %s failed (%r); releasing the hold", ctx.usage_id, exc)
        return self._settlement(
            ctx, Usage(), status="error", estimated=False, error=f"settlement failed: {exc!r}"[:500]
        )

    async def _settle(self, ctx: ChatContext, usage: Usage, **kw: Any) -> None:
        try:
            await self._ledger.run(self._settlement(ctx, usage, **kw), ctx.auth.user_id)
        except (HoldAlreadySettled, DuplicateRef):
            pass
        except Exception as exc:
            await self._ledger.run(self._fallback(ctx, exc), ctx.auth.user_id)

    def _settle_soon(self, ctx: ChatContext, usage: Usage, **kw: Any) -> None:
        """Settle without waiting: from a cancelled task (client gone) the settlement must still
        happen, so the money store owns it from here."""
        fut = self._ledger.submit(self._settlement(ctx, usage, **kw), ctx.auth.user_id)

        def check(f: asyncio.Future[None]) -> None:
            exc = None if f.cancelled() else f.exception()
            if exc is not None and not isinstance(exc, (HoldAlreadySettled, DuplicateRef)):
                self._ledger.submit(self._fallback(ctx, exc), ctx.auth.user_id)

        fut.add_done_callback(check)

    async def _release(self, ctx: ChatContext, error: LlmageError) -> None:
        await self._settle(ctx, Usage(), status="error", estimated=False, error=error.message)

    def _estimate(self, ctx: ChatContext, meter: StreamMeter) -> Usage:
        return Usage(
            prompt_tokens=estimate_tokens(prompt_text(ctx.req.body["messages"])),
            completion_tokens=meter.relayed.tokens,
        )

    # -- the two entry points -----------------------------------------------------------------

    async def complete(
        self, auth: KeyAuth, req: ChatRequest, *, dialect: str, platform: str | None = None
    ) -> ChatResult:
        ctx, channels = await self._prepare(auth, req, dialect, platform)
        try:
            body = await self._call(ctx, channels)
        except LlmageError as exc:
            await self._release(ctx, exc)
            exc.usage_id = ctx.usage_id
            raise
        except BaseException:
            # Cancelled (client gone) or a bug: the hold must still end, in the background.
            self._settle_soon(ctx, Usage(), status="cancelled", estimated=False, error=None)
            raise
        usage = Usage.from_openai(body.get("usage"))
        estimated = usage is None
        if usage is None:
            text = "".join(
                str((c.get("message") or {}).get("content") or "") for c in body["choices"]
            )
            meter = StreamMeter()
            meter.relayed.add(text)
            usage = self._estimate(ctx, meter)
        body["model"] = ctx.model
        await self._settle(ctx, usage, status="ok", estimated=estimated, error=None)
        return ChatResult(ctx.usage_id, ctx.model, body, usage)

    def _servable(self, channel: Channel) -> bool:
        return self._providers.chat(channel.provider) is not None

    def _chosen(self, ctx: ChatContext) -> Callable[[Channel], None]:
        def chosen(channel: Channel) -> None:
            ctx.channel = channel

        return chosen

    async def _call(self, ctx: ChatContext, channels: list[Channel]) -> dict[str, Any]:
        """Fails over through `channels` (services/failover.py) until one answers."""

        async def attempt(channel: Channel, deadline: float) -> dict[str, Any]:
            provider = self._providers.chat(channel.provider)
            assert provider is not None
            return await provider.chat(channel, ctx.req.body, deadline=deadline)

        body, _, release = await self._failover.run(
            channels,
            attempt,
            deadline=ctx.deadline,
            op="chat",
            usable=self._servable,
            chosen=self._chosen(ctx),
        )
        release()
        return body

    async def stream(
        self, auth: KeyAuth, req: ChatRequest, *, dialect: str, platform: str | None = None
    ) -> ChatStream:
        """Opens the upstream stream (failing over until one answers), then hands back an
        iterator that must be closed; closing it settles the hold exactly once."""
        ctx, channels = await self._prepare(auth, req, dialect, platform)

        async def attempt(
            channel: Channel, deadline: float
        ) -> tuple[AsyncIterator[dict[str, Any]], dict[str, Any] | None]:
            provider = self._providers.chat(channel.provider)
            assert provider is not None
            # The whole stream has the request's deadline; only its first chunk the attempt's.
            upstream = provider.chat_stream(channel, ctx.req.body, deadline=ctx.deadline)
            try:
                async with asyncio.timeout_at(deadline) if deadline < ctx.deadline else _NO_CAP:
                    first = await anext(upstream)
            except StopAsyncIteration:
                first = None
            except TimeoutError:
                with contextlib.suppress(BaseException):
                    await upstream.aclose()  # type: ignore[attr-defined]
                raise UpstreamError(
                    UpstreamKind.TIMEOUT, "Upstream did not answer in time"
                ) from None
            except BaseException:
                with contextlib.suppress(BaseException):
                    await upstream.aclose()  # type: ignore[attr-defined]
                raise
            return upstream, first

        try:
            (upstream, first), _, release = await self._failover.run(
                channels,
                attempt,
                deadline=ctx.deadline,
                op="chat_stream",
                usable=self._servable,
                chosen=self._chosen(ctx),
            )
        except LlmageError as error:
            await self._release(ctx, error)
            error.usage_id = ctx.usage_id
            raise
        except BaseException:
            self._settle_soon(ctx, Usage(), status="cancelled", estimated=False, error=None)
            raise
        meter = StreamMeter()
        return ChatStream(
            ctx.usage_id, ctx.model, self._relay(ctx, upstream, first, meter, release), meter
        )

    async def _relay(
        self,
        ctx: ChatContext,
        upstream: AsyncIterator[dict[str, Any]],
        first: dict[str, Any] | None,
        meter: StreamMeter,
        release: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[dict[str, Any]]:
        status, error = "cancelled", None
        try:
            chunk = first
            while chunk is not None:
                chunk["model"] = ctx.model
                usage = chunk.get("usage")
                if usage:
                    meter.usage = Usage.from_openai(usage)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    for key in ("content", "reasoning_content"):
                        piece = delta.get(key)
                        if piece:
                            meter.relayed.add(piece)
                yield chunk
                chunk = await anext(upstream, None)
            status = "ok"
        except UpstreamError as exc:
            if ctx.channel is not None:
                exc.redact(ctx.channel.redact)  # the dialect shows it in the stream's error event
            status, error = "error", exc.message
            metrics.UPSTREAM_ERRORS.labels(
                ctx.channel.provider if ctx.channel else "?", exc.kind.value
            ).inc()
            if ctx.channel is not None:
                self._directory.health.record(ctx.channel, exc.kind)
            raise
        finally:
            release()  # the channel's chat slot
            estimated = meter.usage is None
            usage = meter.usage or self._estimate(ctx, meter)
            # An upstream failure releases the whole hold (DESIGN §5), even mid-stream; a
            # client that leaves pays for what was generated until then.
            self._settle_soon(
                ctx,
                usage,
                status=status,
                estimated=estimated,
                error=error,
                charge=status != "error",
            )
            with contextlib.suppress(BaseException):
                await upstream.aclose()  # type: ignore[attr-defined]
