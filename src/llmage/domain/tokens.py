"""Token arithmetic that needs no model vocabulary.

`count_tokens` is the `sim` provider's tokenizer: one token per CJK character, word or punctuation
mark. It is what `sim` reports as usage, so sim's counts are real for the text it really produced.

`prompt_token_ceiling` bounds what any byte-level BPE tokenizer can count for a prompt: such a
token spans at least one UTF-8 byte, so bytes + per-message framing is an upper bound. It sizes
the worst-case hold; nothing is ever charged from it.

`estimate_tokens` is the documented estimate for a stream the client cut before the upstream
reported usage: CJK characters count one each, other text one per 4 characters (rounded up).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_TOKEN = re.compile(
    r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|\w+|[^\w\s]"
)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")

MESSAGE_FRAMING_TOKENS = 8  # role markers and separators per message, generous


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def split_tokens(text: str) -> list[str]:
    """Tokens with their leading whitespace kept, so joining them gives the text back."""
    return re.findall(r"\s*(?:" + _TOKEN.pattern + r")|\s+$", text)


class TokenTally:
    """The estimate over text that arrives in pieces (stream deltas): counting per piece and
    rounding once at the end gives the same number as estimating the joined text."""

    __slots__ = ("cjk", "other")

    def __init__(self) -> None:
        self.cjk = 0
        self.other = 0

    def add(self, text: str) -> None:
        n = len(_CJK.findall(text))
        self.cjk += n
        self.other += len(text) - n

    @property
    def tokens(self) -> int:
        return self.cjk + -(-self.other // 4)


def estimate_tokens(text: str) -> int:
    tally = TokenTally()
    tally.add(text)
    return tally.tokens


def _parts(content: Any) -> Iterable[tuple[str, str]]:
    """(kind, text) for every piece of a message content: text pieces and attachments."""
    if isinstance(content, str):
        yield "text", content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, Mapping):
                kind = part.get("type")
                if kind == "text" and isinstance(part.get("text"), str):
                    yield "text", part["text"]
                else:
                    yield "attachment", ""
            elif isinstance(part, str):
                yield "text", part


def prompt_token_ceiling(
    messages: Iterable[Mapping[str, Any]], attachment_tokens: int, extra_text: str = ""
) -> int:
    total = len(extra_text.encode())
    for msg in messages:
        total += MESSAGE_FRAMING_TOKENS
        for kind, text in _parts(msg.get("content")):
            total += len(text.encode()) if kind == "text" else attachment_tokens
        for key in ("tool_calls", "name", "tool_call_id"):
            if key in msg:
                total += len(repr(msg[key]).encode())
    return total


def prompt_text(messages: Iterable[Mapping[str, Any]]) -> str:
    return "\n".join(t for m in messages for k, t in _parts(m.get("content")) if k == "text")
