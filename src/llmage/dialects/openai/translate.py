"""Pure translation between the canonical chat result and OpenAI's wire format."""

from __future__ import annotations

from typing import Any

from llmage.domain.catalog import Catalog


def stream_chunk(chunk: dict[str, Any], include_usage: bool) -> dict[str, Any] | None:
    """Upstream chunks pass unchanged; the usage-only chunk we asked for on the client's behalf
    is dropped unless the client asked for it too."""
    if not include_usage and not chunk.get("choices") and "usage" in chunk:
        return None
    return chunk


def models_list(catalog: Catalog) -> dict[str, Any]:
    seen: set[str] = set()
    data = []
    for entry in catalog.entries():
        for name in entry.names:
            if name not in seen:
                seen.add(name)
                data.append(
                    {"id": name, "object": "model", "created": 0, "owned_by": entry.platform}
                )
    return {"object": "list", "data": data}
