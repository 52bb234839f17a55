"""Provider name -> factories. A new native provider is one folder `providers/<name>/` plus ONE
line in `PROVIDERS` below; `llmage channel add --provider` and the admin API offer whatever this
table holds, with its default platform name, credential types and base URL.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from llmage.domain.credentials import CredentialType
from llmage.providers.ark.adapter import ArkAdapter
from llmage.providers.byteplus.adapter import BytePlusAdapter
from llmage.providers.contract import ChatProvider
from llmage.providers.dashscope.adapter import DashScopeAdapter
from llmage.providers.jimeng.adapter import JimengAdapter
from llmage.providers.kling.adapter import KlingAdapter
from llmage.providers.openai_compat import OpenAICompatProvider
from llmage.providers.openai_media.adapter import OpenAIMediaAdapter
from llmage.providers.sim import SimProvider
from llmage.providers.sim_tasks import SimTaskAdapter
from llmage.providers.tasks import TaskAdapter
from llmage.providers.transport import Transport
from llmage.providers.vidu.adapter import ViduAdapter


@dataclass(frozen=True, slots=True)
class Deps:
    """What a factory may use: the shared transport and the built-in sim chat."""

    transport: Transport
    sim_chat: SimProvider


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    name: str
    platform: str  # default platform name of its channels (`/{platform}/v1/...` routes)
    credentials: tuple[CredentialType, ...]  # accepted types; empty: needs none (sim)
    chat: Callable[[Deps], ChatProvider] | None = None
    task: Callable[[], TaskAdapter] | None = None
    default_base_url: str = ""


PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec("sim", "sim", (), chat=lambda d: d.sim_chat, task=SimTaskAdapter),
    ProviderSpec(
        "openai_compat",
        "openai_compat",
        ("key", "pool"),
        chat=lambda d: OpenAICompatProvider(d.transport),
        task=OpenAIMediaAdapter,
        default_base_url="https://api.openai.com/v1",
    ),
    ProviderSpec(
        "kling",
        "kling",
        ("pair",),
        task=KlingAdapter,
        default_base_url="https://api-beijing.klingai.com",
    ),
    ProviderSpec(
        "dashscope",
        "aliyun",
        ("key", "pool"),
        task=DashScopeAdapter,
        default_base_url=DashScopeAdapter.default_base_url,
    ),
    ProviderSpec(
        "ark",
        "volcengine",
        ("key", "pool"),
        chat=lambda d: OpenAICompatProvider(d.transport),
        task=ArkAdapter,
        default_base_url=ArkAdapter.default_base_url,
    ),
    ProviderSpec(
        "byteplus",
        "byteplus",
        ("key", "pool"),
        chat=lambda d: OpenAICompatProvider(d.transport),
        task=BytePlusAdapter,
        default_base_url=BytePlusAdapter.default_base_url,
    ),
    ProviderSpec(
        "jimeng",
        "jimeng",
        ("pair",),
        task=JimengAdapter,
        default_base_url=JimengAdapter.default_base_url,
    ),
    ProviderSpec(
        "vidu", "vidu", ("key", "pool"), task=ViduAdapter, default_base_url="https://api.vidu.cn"
    ),
)

SPECS = {spec.name: spec for spec in PROVIDERS}
PROVIDER_NAMES = tuple(SPECS)
# Kept for the CLI: every provider name (chat or task).
CHAT_PROVIDERS = PROVIDER_NAMES


class ProviderRegistry:
    def __init__(self, transport: Transport, sim_chat: SimProvider) -> None:
        deps = Deps(transport, sim_chat)
        self._chat = {s.name: s.chat(deps) for s in PROVIDERS if s.chat is not None}
        self._tasks = {s.name: s.task() for s in PROVIDERS if s.task is not None}

    def chat(self, provider: str) -> ChatProvider | None:
        return self._chat.get(provider)

    def task(self, provider: str) -> TaskAdapter | None:
        return self._tasks.get(provider)

    @staticmethod
    def spec(provider: str) -> ProviderSpec | None:
        return SPECS.get(provider)
