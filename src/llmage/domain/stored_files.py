"""Files in our own storage, as our own records name them.

A `StoredFile` is made only when the platform itself has stored bytes (an input it accepted, a
result it re-hosted) and when it reads those records back. It is the only thing a media link can
be minted from: request parameters are plain JSON and never become one, whatever shape a client
gives them. Tasks keep their files apart from their parameters (`inputs` and `outputs`), so a
parameter that looks like a file record stays a parameter.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str  # storage key; never leaves the server
    size: int
    sha256: str
    content_type: str  # sniffed from the bytes when stored (domain.media_types)

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "content_type": self.content_type,
            "size": self.size,
            "sha256": self.sha256,
        }

    @classmethod
    def from_record(cls, data: Any) -> StoredFile | None:
        """A record we wrote back to a StoredFile; None for anything else."""
        if not isinstance(data, Mapping):
            return None
        key, ctype = data.get("key"), data.get("content_type")
        if not isinstance(key, str) or not isinstance(ctype, str):
            return None
        size, digest = data.get("size"), data.get("sha256")
        return cls(
            key=key,
            size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
            sha256=digest if isinstance(digest, str) else "",
            content_type=ctype,
        )


# A named slot holds one file (image1_file, video, cover) or several (image_files, images).
FileSlot = StoredFile | tuple[StoredFile, ...]
TaskFiles = dict[str, FileSlot]


def slot_files(slot: FileSlot) -> tuple[StoredFile, ...]:
    return slot if isinstance(slot, tuple) else (slot,)


def files_record(files: Mapping[str, FileSlot]) -> dict[str, Any]:
    """JSON for a task's `inputs` / `outputs` column."""
    return {
        name: [f.record() for f in slot] if isinstance(slot, tuple) else slot.record()
        for name, slot in files.items()
    }


def files_from_record(data: Any) -> TaskFiles:
    """A task's `inputs` / `outputs` column back to typed files (unreadable entries dropped)."""
    out: TaskFiles = {}
    if not isinstance(data, Mapping):
        return out
    for name, value in data.items():
        if isinstance(value, list):
            many = tuple(f for f in map(StoredFile.from_record, value) if f is not None)
            if many:
                out[str(name)] = many
        elif (one := StoredFile.from_record(value)) is not None:
            out[str(name)] = one
    return out
