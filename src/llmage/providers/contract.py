"""What every provider adapter offers. Adapters translate only: no billing, no database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from llmage.domain.credentials import ApiKey, Credentials, KeyPool, secret_values
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

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential value this channel sends upstream (every key of a pool, both
        halves of a pair, secret-looking options)."""
        values = list(secret_values(self.credentials))
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
