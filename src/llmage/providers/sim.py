"""`sim`: the built-in offline upstream. It answers like an OpenAI-compatible endpoint, reports
token counts of the text it really produced (llmage.domain.tokens), and can be slowed down or made
to fail through the channel options or the LLMAGE_SIM_* settings:

  latency_ms        delay before the first byte
  token_delay_ms    delay between stream chunks
  failure_rate      probability (0..1) that a request fails as a retryable upstream error
  exhaust_max_tokens  always produce exactly max_tokens tokens (makes charges predictable)
  reasoning         emit `reasoning_content` before the answer, like thinking models
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.ids import chat_completion_id
from llmage.domain.tokens import count_tokens, prompt_text, split_tokens
from llmage.providers.contract import Channel

_SENTENCES = (
    "This is a simulated reply from the llmage sim provider.",
    "It counts every word and punctuation mark as one token.",
    "Each CJK character such as 你好 counts as one token too.",
    "Replies are deterministic: the same prompt always gets the same answer.",
    "Latency and failures can be configured per channel.",
    "Nothing here leaves the machine.",
)
_FILLER = "lorem"


class SimProvider:
    name = "sim"

    def __init__(
        self, *, latency_ms: float = 0.0, token_delay_ms: float = 0.0, failure_rate: float = 0.0
    ) -> None:
        self._defaults = {
            "latency_ms": latency_ms,
            "token_delay_ms": token_delay_ms,
            "failure_rate": failure_rate,
        }

    def _opt(self, channel: Channel, name: str) -> float:
        return float(channel.options.get(name, self._defaults.get(name, 0.0)))

    def _reply(
        self, channel: Channel, body: Mapping[str, Any]
    ) -> tuple[list[str], list[str], str, int]:
        """(reasoning tokens, answer tokens, finish_reason, prompt_tokens)."""
        prompt = prompt_text(body.get("messages") or [])
        digest = hashlib.sha256(prompt.encode()).digest()
        start = digest[0] % len(_SENTENCES)
        text = " ".join(_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(2 + digest[1] % 3))
        tokens = split_tokens(text)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        finish = "stop"
        reasoning = (
            split_tokens("Let me think about that.") if channel.options.get("reasoning") else []
        )
        if isinstance(limit, int) and limit > 0:
            if channel.options.get("exhaust_max_tokens"):
                while len(reasoning) + len(tokens) < limit:
                    tokens.append(" " + _FILLER)
            budget = max(limit - len(reasoning), 0)
            if len(reasoning) > limit:
                reasoning = reasoning[:limit]
            if len(tokens) > budget:
                tokens, finish = tokens[:budget], "length"
            if len(tokens) == budget and channel.options.get("exhaust_max_tokens"):
                finish = "length"
        return reasoning, tokens, finish, count_tokens(prompt)

    async def _prelude(self, channel: Channel) -> None:
        latency = self._opt(channel, "latency_ms")
        if latency > 0:
            await asyncio.sleep(latency / 1000)
        if random.random() < self._opt(channel, "failure_rate"):
            raise UpstreamError(
                UpstreamKind.RETRYABLE, "sim: injected upstream failure", upstream_status=503
            )

    @staticmethod
    def _usage(prompt: int, completion: int) -> dict[str, Any]:
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0},
        }

    # `deadline` is not needed: sim is local and always ends (its delays are bounded).
    async def chat(
        self, channel: Channel, body: dict[str, Any], *, deadline: float | None = None
    ) -> dict[str, Any]:
        await self._prelude(channel)
        reasoning, tokens, finish, prompt_tokens = self._reply(channel, body)
        n = int(body.get("n") or 1)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens).strip()}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning).strip()
        completion = (len(tokens) + len(reasoning)) * n
        return {
            "id": chat_completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": channel.upstream_model(body["model"]),
            "choices": [
                {"index": i, "message": dict(message), "finish_reason": finish, "logprobs": None}
                for i in range(n)
            ],
            "usage": self._usage(prompt_tokens, completion),
        }

    async def chat_stream(
        self, channel: Channel, body: dict[str, Any], *, deadline: float | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        await self._prelude(channel)
        reasoning, tokens, finish, prompt_tokens = self._reply(channel, body)
        delay = self._opt(channel, "token_delay_ms") / 1000
        base = {
            "id": chat_completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": channel.upstream_model(body["model"]),
        }
        yield {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
        for key, pieces in (("reasoning_content", reasoning), ("content", tokens)):
            for piece in pieces:
                if delay:
                    await asyncio.sleep(delay)
                yield {
                    **base,
                    "choices": [{"index": 0, "delta": {key: piece}, "finish_reason": None}],
                }
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
        yield {
            **base,
            "choices": [],
            "usage": self._usage(prompt_tokens, len(tokens) + len(reasoning)),
        }
