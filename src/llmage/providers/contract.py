"""What every provider adapter offers. Adapters translate only: no billing, no database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmage.domain.credentials import ApiKey, Credentials, KeyPool


@dataclass(frozen=True, slots=True)
class Channel:
    """A configured upstream, credential already decrypted (never logged, never returned)."""

    id: int
    name: str
    provider: str
    platform: str
    base_url: str
    credentials: Credentials | None = field(repr=False)
    models: frozenset[str]
    model_map: Mapping[str, str]
    options: Mapping[str, Any]
    priority: int = 0
    weight: int = 1

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)

    @property
    def api_key(self) -> str | None:
        """The key of a single-key channel (chat relays sign with it); a pool's first key."""
        if isinstance(self.credentials, ApiKey):
            return self.credentials.key
        if isinstance(self.credentials, KeyPool):
            return self.credentials.keys[0]
        return None


class ChatProvider(Protocol):
    async def chat(self, channel: Channel, body: dict[str, Any]) -> dict[str, Any]:
        """Non-stream completion: the upstream's chat.completion object (with `usage`)."""

    def chat_stream(self, channel: Channel, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Chunks as they arrive, upstream usage chunk included; closing the iterator early
        closes the upstream request. Raises UpstreamError before the first chunk on failure."""
