"""What every provider adapter offers. Adapters translate only: no billing, no database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Channel:
    """A configured upstream, credential already decrypted (never logged, never returned)."""

    id: int
    name: str
    provider: str
    platform: str
    base_url: str
    api_key: str | None = field(repr=False)
    models: frozenset[str]
    model_map: Mapping[str, str]
    options: Mapping[str, Any]
    priority: int = 0
    weight: int = 1

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)


class ChatProvider(Protocol):
    async def chat(self, channel: Channel, body: dict[str, Any]) -> dict[str, Any]:
        """Non-stream completion: the upstream's chat.completion object (with `usage`)."""

    def chat_stream(self, channel: Channel, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Chunks as they arrive, upstream usage chunk included; closing the iterator early
        closes the upstream request. Raises UpstreamError before the first chunk on failure."""
