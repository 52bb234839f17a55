"""Channel operations, one place for the CLI (`llmage channel ...`) and the admin JSON API
(`/api/admin/channels`): add, list, show, update, enable, disable, remove and test.

Credentials arrive typed (domain/credentials.py), are checked against what the provider's
registry entry accepts, and are stored encrypted; views never carry a secret, only its type and
a short fingerprint. `test` makes a real minimal upstream call: a one-token chat ping for a
channel serving chat models, else the task adapter's probe (an authenticated list or GET).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from llmage.auth.crypto import CredentialBox
from llmage.db.repos.channels import ChannelRepo, ChannelRow
from llmage.db.repos.tasks import TaskRepo
from llmage.domain.catalog import Catalog, ModelKind
from llmage.domain.clock import now_ms
from llmage.domain.credentials import Credentials, describe, dump_secret, load_secret
from llmage.domain.errors import (
    Conflict,
    InvalidParameter,
    LlmageError,
    MissingParameter,
    NotFound,
    UpstreamError,
)
from llmage.observability import metrics
from llmage.providers.contract import Channel
from llmage.providers.executor import TaskExecutor
from llmage.providers.registry import PROVIDER_NAMES, ProviderRegistry, ProviderSpec
from llmage.services.channel_health import check_routing_options
from llmage.services.routing import ChannelDirectory


@dataclass(frozen=True, slots=True)
class ChannelView:
    id: int
    name: str
    provider: str
    platform: str
    base_url: str
    credential: str  # "key", "pair", "pool of 3", "-": never any part of a secret
    credential_type: str | None
    models: tuple[str, ...]
    model_map: dict[str, str]
    options: dict[str, Any]
    priority: int
    weight: int
    enabled: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "provider": self.provider,
            "platform": self.platform,
            "base_url": self.base_url,
            "credential": self.credential,
            "credential_type": self.credential_type,
            "models": list(self.models),
            "model_map": self.model_map,
            "options": self.options,
            "priority": self.priority,
            "weight": self.weight,
            "enabled": self.enabled,
        }


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    latency_ms: int
    call: str  # what was tried: "chat" | "probe"
    kind: str | None = None  # the error kind when not ok
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "latency_ms": self.latency_ms,
            "call": self.call,
            "kind": self.kind,
            "detail": self.detail,
        }


class ChannelService:
    def __init__(
        self,
        *,
        repo: ChannelRepo,
        tasks: TaskRepo,
        box: CredentialBox,
        directory: ChannelDirectory,
        providers: ProviderRegistry,
        executor: TaskExecutor,
        catalog: Catalog,
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`announce` tells every instance that channels changed (the platform's invalidation
        bus); without one only this process's directory forgets its cache."""
        self._announce = announce
        self._repo = repo
        self._tasks = tasks
        self._box = box
        self._directory = directory
        self._providers = providers
        self._exec = executor
        self._catalog = catalog
        # The last test of each channel id by this instance, with when (epoch ms): the health
        # the console shows until routing keeps a shared health record.
        self.last_tests: dict[int, tuple[ProbeResult, int]] = {}

    def health(self, channel_id: int) -> dict[str, Any]:
        """What this instance knows of a channel's health, for the admin views."""
        last = self.last_tests.get(channel_id)
        if last is None:
            return {"last_test": None}
        result, at = last
        return {"last_test": {**result.as_dict(), "at": at}}

    async def _changed(self) -> None:
        if self._announce is None:
            self._directory.invalidate()
        else:
            await self._announce()

    # -- reads ----------------------------------------------------------------------------------

    def _view(self, row: ChannelRow) -> ChannelView:
        try:
            creds = (
                load_secret(row.credential_type, self._box.open(row.credential_enc))
                if row.credential_enc
                else None
            )
            described = describe(creds)
        except ValueError:
            described = "unreadable (secret key changed?)"
        return ChannelView(
            id=row.id,
            name=row.name,
            provider=row.provider,
            platform=row.platform,
            base_url=row.base_url,
            credential=described,
            credential_type=row.credential_type,
            models=row.models,
            model_map=row.model_map,
            options=row.options,
            priority=row.priority,
            weight=row.weight,
            enabled=row.enabled,
        )

    async def views(self) -> list[ChannelView]:
        return [self._view(r) for r in await self._repo.list()]

    async def show(self, ident: str) -> ChannelView:
        row = await self._repo.get(ident)
        if row is None:
            raise NotFound(f"No channel '{ident}'", param="channel")
        return self._view(row)

    # -- changes --------------------------------------------------------------------------------

    @staticmethod
    def _spec(provider: str) -> ProviderSpec:
        spec = ProviderRegistry.spec(provider)
        if spec is None:
            raise InvalidParameter(
                f"Unknown provider '{provider}'", param="provider", allowed=PROVIDER_NAMES
            )
        return spec

    @staticmethod
    def _check_credentials(spec: ProviderSpec, creds: Credentials | None) -> None:
        if not spec.credentials:
            if creds is not None:
                raise InvalidParameter(
                    f"Provider '{spec.name}' takes no credential", param="credentials"
                )
            return
        if creds is None:
            fields = {"key": "api_key", "pair": "access_key and secret_key", "pool": "api_keys"}
            wanted = " or ".join(fields[t] for t in spec.credentials)
            raise MissingParameter(wanted)
        if creds.type not in spec.credentials:
            raise InvalidParameter(
                f"Provider '{spec.name}' takes a credential of type "
                f"{' or '.join(spec.credentials)}, not {creds.type}",
                param="credentials",
                allowed=spec.credentials,
            )

    @staticmethod
    def _check_url(spec: ProviderSpec, base_url: str) -> None:
        if spec.name == "sim" and not base_url:
            return
        if not base_url.startswith(("http://", "https://")):
            raise InvalidParameter("An http(s) URL is required", param="base_url")

    async def add(
        self,
        *,
        name: str,
        provider: str,
        models: list[str],
        credentials: Credentials | None,
        base_url: str | None = None,
        platform: str | None = None,
        model_map: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        priority: int = 0,
        weight: int = 1,
    ) -> ChannelView:
        spec = self._spec(provider)
        if not name.strip():
            raise MissingParameter("name")
        if not models:
            raise MissingParameter("models")
        self._check_credentials(spec, credentials)
        url = spec.default_base_url if base_url is None else base_url
        self._check_url(spec, url)
        if weight < 1:
            raise InvalidParameter("weight must be at least 1", param="weight")
        check_routing_options(options)
        channel_id = await self._repo.add(
            name=name.strip(),
            provider=provider,
            platform=platform or spec.platform,
            base_url=url,
            credential_enc=self._box.seal(dump_secret(credentials)) if credentials else None,
            credential_type=credentials.type if credentials else None,
            models=models,
            model_map=model_map,
            options=options,
            priority=priority,
            weight=weight,
        )
        await self._changed()
        return await self.show(str(channel_id))

    async def update(
        self, ident: str, *, credentials: Credentials | None = None, **fields: Any
    ) -> ChannelView:
        current = await self.show(ident)
        spec = self._spec(current.provider)
        values = {k: v for k, v in fields.items() if v is not None}
        if "base_url" in values:
            self._check_url(spec, values["base_url"])
        if "weight" in values and values["weight"] < 1:
            raise InvalidParameter("weight must be at least 1", param="weight")
        check_routing_options(values.get("options"))
        if credentials is not None:
            self._check_credentials(spec, credentials)
            values["credential_enc"] = self._box.seal(dump_secret(credentials))
            values["credential_type"] = credentials.type
        enabled = values.pop("enabled", None)
        await self._repo.update(current.id, **values)
        if enabled is not None:
            await self._repo.set_enabled(str(current.id), bool(enabled))
        await self._changed()
        return await self.show(str(current.id))

    async def set_enabled(self, ident: str, enabled: bool) -> ChannelView:
        current = await self.show(ident)
        await self._repo.set_enabled(str(current.id), enabled)
        await self._changed()
        return await self.show(str(current.id))

    async def remove(self, ident: str, *, force: bool = False) -> ChannelView:
        current = await self.show(ident)
        open_tasks = await self._tasks.open_on_channel(current.id)
        if open_tasks and not force:
            raise Conflict(
                f"Channel '{current.name}' still has {open_tasks} open task(s): disable it, let "
                "them finish, then remove it (or force: they fail and are refunded)",
                param="channel",
            )
        await self._repo.remove(current.id)
        await self._changed()
        return current

    # -- test -----------------------------------------------------------------------------------

    def _chat_model(self, channel: Channel) -> str | None:
        """The upstream name of a chat model this channel serves (None: it serves none)."""
        for name in sorted(channel.models):
            entries = [*self._catalog.by_name(name)]
            by_id = self._catalog.by_llmid(name)
            if by_id is not None:
                entries.append(by_id)
            chat = next((e for e in entries if e.kind is ModelKind.CHAT), None)
            if chat is not None:
                return channel.upstream_model(name if name in chat.names else chat.default_name)
        return None

    async def test(self, ident: str) -> ProbeResult:
        view = await self.show(ident)
        result = await self._probe(view)
        self.last_tests[view.id] = (result, now_ms())
        return result

    async def _probe(self, view: ChannelView) -> ProbeResult:
        await self._changed()
        channel = await self._directory.by_id(view.id)
        if channel is None:
            return ProbeResult(False, 0, "none", "auth", "the credential cannot be decrypted")
        chat = self._providers.chat(channel.provider)
        adapter = self._providers.task(channel.provider)
        started = time.perf_counter()
        call = "none"
        try:
            model = self._chat_model(channel)
            if chat is not None and (adapter is None or model is not None):
                call = "chat"
                body = {
                    "model": model or channel.upstream_model(sorted(channel.models)[0]),
                    "messages": [{"role": "user", "content": "ping"}],
                    "max_tokens": 1,
                }
                await chat.chat(channel, body)
            elif adapter is not None:
                call = "probe"
                ctx = self._exec.context(adapter, channel)
                request = adapter.probe_request(ctx)
                if request is None:
                    return ProbeResult(False, 0, call, None, "this provider has no test call")
                await self._exec.call(adapter, ctx, request, op="probe")
            else:
                return ProbeResult(False, 0, call, None, "no adapter for this provider")
        except UpstreamError as exc:
            if exc.kind.channel_problem:
                metrics.CHANNEL_HEALTHY.labels(channel.name).set(0)
            latency = int((time.perf_counter() - started) * 1000)
            return ProbeResult(False, latency, call, exc.kind.value, exc.message)
        except LlmageError as exc:
            latency = int((time.perf_counter() - started) * 1000)
            return ProbeResult(False, latency, call, None, exc.message)
        metrics.CHANNEL_HEALTHY.labels(channel.name).set(1)
        return ProbeResult(True, int((time.perf_counter() - started) * 1000), call)
