"""Provider name -> adapter. A new native provider is one module plus one line here."""

from __future__ import annotations

from llmage.providers.contract import ChatProvider
from llmage.providers.openai_compat import OpenAICompatProvider
from llmage.providers.sim import SimProvider
from llmage.providers.tasks import TaskProvider
from llmage.providers.transport import Transport

CHAT_PROVIDERS = ("openai_compat", "sim")


class ProviderRegistry:
    def __init__(self, transport: Transport, sim: SimProvider, sim_media: TaskProvider) -> None:
        self._chat: dict[str, ChatProvider] = {
            "openai_compat": OpenAICompatProvider(transport),
            "sim": sim,
        }
        self._tasks: dict[str, TaskProvider] = {"sim": sim_media}

    def chat(self, provider: str) -> ChatProvider | None:
        return self._chat.get(provider)

    def task(self, provider: str) -> TaskProvider | None:
        return self._tasks.get(provider)
