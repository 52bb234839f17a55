"""Media in and out of storage: client inputs (uploads, data URIs, URLs fetched only through the
guarded fetcher) before a task starts, and provider outputs (copied before upstream URLs expire,
plus a cover cut from the first frame when the provider gives none) when it ends.

Every stored file is recorded with the type sniffed from its bytes, and a task keeps its files
in records of their own (`inputs`, `outputs`), apart from its parameters."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from llmage.domain.errors import InvalidParameter, UpstreamError, UpstreamKind
from llmage.domain.media_types import ALLOWED, sniff
from llmage.domain.params import ParamSpec
from llmage.domain.stored_files import FileSlot, StoredFile, TaskFiles, files_record, slot_files
from llmage.domain.tasks import MediaSource
from llmage.net.fetch import FetchFailed, FetchRejected, GuardedFetcher
from llmage.providers.tasks import MediaInput, TaskOutput
from llmage.services.media_links import MediaLinks
from llmage.storage.contract import Storage
from llmage.storage.video_tools import first_frame_jpeg

# The edges serve media through this service only (they import neither storage nor db).
__all__ = ["MediaService", "request_fingerprint"]

_FAMILY = {
    "image": "image/",
    "images": "image/",
    "video": "video/",
    "videos": "video/",
    "audio": "audio/",
    "audios": "audio/",
}


class MediaService:
    def __init__(
        self,
        storage: Storage,
        fetcher: GuardedFetcher,
        links: MediaLinks,
        max_input_bytes: int,
    ) -> None:
        self.storage = storage
        self.links = links
        self._fetcher = fetcher
        self._max = max_input_bytes

    async def _put(self, data: bytes) -> StoredFile:
        # Recorded as what the bytes are, never as what a client or an upstream says they are.
        return await self.storage.put(data, sniff(data))

    # -- inputs ---------------------------------------------------------------------------------

    async def _store_input(self, spec: ParamSpec, src: MediaSource) -> StoredFile:
        data = src.data
        if data is None and src.url:
            try:
                fetched = await self._fetcher.fetch(src.url)
            except (FetchRejected, FetchFailed) as exc:
                raise InvalidParameter(f"'{spec.name}': {exc}", param=spec.name) from exc
            data = fetched.data
        if not data:
            raise InvalidParameter(f"'{spec.name}' is empty", param=spec.name)
        if len(data) > self._max:
            raise InvalidParameter(
                f"'{spec.name}' is larger than {self._max} bytes", param=spec.name
            )
        ctype = sniff(data)
        family = _FAMILY.get(spec.type)
        if family and not ctype.startswith(family):
            raise InvalidParameter(
                f"'{spec.name}' must be {family[:-1]} (got {ctype})",
                param=spec.name,
                allowed=tuple(k for k in ALLOWED if k.startswith(family)),
            )
        return await self._put(data)

    async def materialize(
        self, specs: Sequence[ParamSpec], params: Mapping[str, Any]
    ) -> tuple[dict[str, Any], TaskFiles]:
        """Split validated params into plain params and stored input files.

        Every file slot must hold what the dialect made of a client's file (MediaSource): an
        object that merely looks like one of our file records is refused, not trusted."""
        plain = dict(params)
        files: TaskFiles = {}
        for spec in specs:
            if not spec.is_file or spec.name not in plain:
                continue
            value = plain.pop(spec.name)
            many = value if isinstance(value, list) else [value]
            if not all(isinstance(v, MediaSource) for v in many):
                raise InvalidParameter(
                    f"'{spec.name}' must be a file upload, an http(s) URL, or base64 / a data URI",
                    param=spec.name,
                )
            stored = tuple([await self._store_input(spec, v) for v in many])
            if isinstance(value, list):
                if stored:
                    files[spec.name] = stored
            else:
                files[spec.name] = stored[0]
        return plain, files

    def inputs(self, files: TaskFiles, base_url: str) -> dict[str, list[MediaInput]]:
        """A task's stored inputs as provider-ready media (signed URL + bytes on demand)."""
        return {
            name: [self._input(f, base_url) for f in slot_files(slot)]
            for name, slot in files.items()
        }

    def _input(self, file: StoredFile, base_url: str) -> MediaInput:
        async def read() -> bytes:
            return await self.storage.read_all(file.key)

        return MediaInput(file.content_type, self.links.url(file, base_url, "input"), read)

    async def read_all(self, file: StoredFile) -> bytes:
        return await self.storage.read_all(file.key)

    async def reopen(self, slot: FileSlot) -> MediaSource | list[MediaSource]:
        """Stored files back to client-like sources (a remix submits its original's inputs)."""
        sources = [
            MediaSource(data=await self.read_all(f), content_type=f.content_type)
            for f in slot_files(slot)
        ]
        return sources if isinstance(slot, tuple) else sources[0]

    # -- outputs --------------------------------------------------------------------------------

    async def _output_bytes(self, out: TaskOutput) -> bytes:
        if out.data is not None:
            return out.data
        if not out.url:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Provider output has no data or URL")
        try:
            fetched = await self._fetcher.fetch(out.url)
        except (FetchRejected, FetchFailed) as exc:
            raise UpstreamError(UpstreamKind.RETRYABLE, f"Result download failed: {exc}") from exc
        return fetched.data

    async def rehost(self, outputs: Sequence[TaskOutput], kind: str) -> dict[str, Any]:
        """Copy a provider's results into our storage; the task's `outputs` record (JSON)."""
        files: TaskFiles = {}
        images: list[StoredFile] = []
        for out in outputs:
            stored = await self._put(await self._output_bytes(out))
            if out.kind == "image":
                images.append(stored)
            else:
                files[out.kind] = stored
        if images:
            files["images"] = tuple(images)
        video = files.get("video")
        if kind == "video" and isinstance(video, StoredFile) and "cover" not in files:
            frame = await first_frame_jpeg(await self.read_all(video))
            files["cover"] = await self._put(frame)
        return files_record(files)

    # -- links ----------------------------------------------------------------------------------

    def url(self, file: StoredFile, base_url: str, name: str) -> str:
        return self.links.url(file, base_url, name)


def request_fingerprint(model: str, params: Mapping[str, Any]) -> str:
    """Same key + same body must mean the same task; file refs compare by content hash."""

    def norm(v: Any) -> Any:
        if isinstance(v, MediaSource):
            return {"url": v.url, "sha256": hashlib.sha256(v.data).hexdigest() if v.data else None}
        if isinstance(v, dict):
            return {k: norm(x) for k, x in sorted(v.items())}
        if isinstance(v, list):
            return [norm(x) for x in v]
        return v

    blob = json.dumps({"model": model, "params": norm(dict(params))}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
