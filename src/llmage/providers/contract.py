"""What every provider adapter offers. Adapters translate only: no billing, no database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmage.domain.redaction import Redactor, redactor

# Option names whose string values are credentials too (an access/secret pair, a token).
_SECRET_OPTION_WORDS = ("key", "secret", "token", "password")


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

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential value this channel sends upstream."""
        values = [self.api_key] if self.api_key else []
        for name, value in self.options.items():
            if isinstance(value, str) and any(w in name.lower() for w in _SECRET_OPTION_WORDS):
                values.append(value)
        return tuple(values)

    @property
    def redact(self) -> Redactor:
        """Removes this channel's credentials and address from upstream text (cached)."""
        return redactor(self.secrets, (self.base_url,))


class ChatProvider(Protocol):
    """`deadline` (time.monotonic()) ends the call, stream included, with an UpstreamError of
    kind TIMEOUT; cancelling a call closes its upstream request."""

    async def chat(
        self, channel: Channel, body: dict[str, Any], *, deadline: float | None = None
    ) -> dict[str, Any]:
        """Non-stream completion: the upstream's chat.completion object (with `usage`)."""

    def chat_stream(
        self, channel: Channel, body: dict[str, Any], *, deadline: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Chunks as they arrive, upstream usage chunk included; closing the iterator early
        closes the upstream request. Raises UpstreamError before the first chunk on failure."""
