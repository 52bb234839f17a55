"""Media in and out of storage: client inputs (uploads, data URIs, URLs fetched only through the
guarded fetcher) before a task starts, and provider outputs (copied before upstream URLs expire,
plus a cover cut from the first frame when the provider gives none) when it ends."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from llmage.domain.errors import InvalidParameter, UpstreamError, UpstreamKind
from llmage.domain.params import ParamSpec
from llmage.domain.tasks import MediaSource
from llmage.net.fetch import FetchFailed, FetchRejected, GuardedFetcher, sniff_content_type
from llmage.providers.tasks import MediaInput, TaskOutput
from llmage.storage.contract import Storage
from llmage.storage.signing import MediaGrant, MediaTokenError, sign, verify_grant
from llmage.storage.video_tools import first_frame_jpeg

# The edges serve media through this service only (they import neither storage nor db).
__all__ = ["MediaGrant", "MediaService", "MediaTokenError", "file_ref", "request_fingerprint"]

_FAMILY = {
    "image": "image/",
    "images": "image/",
    "video": "video/",
    "videos": "video/",
    "audio": "audio/",
    "audios": "audio/",
}
_EXT = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
}


def file_ref(obj: Any) -> dict[str, Any]:
    return {
        "key": obj.key,
        "content_type": obj.content_type,
        "size": obj.size,
        "sha256": obj.sha256,
    }


class MediaService:
    def __init__(
        self,
        storage: Storage,
        fetcher: GuardedFetcher,
        secret: bytes,
        ttl: int,
        max_input_bytes: int,
    ) -> None:
        self.storage = storage
        self._fetcher = fetcher
        self._secret = secret
        self._ttl = ttl
        self._max = max_input_bytes

    # -- inputs ---------------------------------------------------------------------------------

    async def _store_input(self, spec: ParamSpec, src: MediaSource) -> dict[str, Any]:
        data, ctype = src.data, src.content_type
        if data is None and src.url:
            try:
                fetched = await self._fetcher.fetch(src.url)
            except (FetchRejected, FetchFailed) as exc:
                raise InvalidParameter(f"'{spec.name}': {exc}", param=spec.name) from exc
            data, ctype = fetched.data, fetched.content_type
        if not data:
            raise InvalidParameter(f"'{spec.name}' is empty", param=spec.name)
        if len(data) > self._max:
            raise InvalidParameter(
                f"'{spec.name}' is larger than {self._max} bytes", param=spec.name
            )
        # What the bytes are, not what the client says they are.
        ctype = sniff_content_type(data) or "application/octet-stream"
        family = _FAMILY.get(spec.type)
        if family and not ctype.startswith(family):
            raise InvalidParameter(
                f"'{spec.name}' must be {family[:-1]} (got {ctype})",
                param=spec.name,
                allowed=tuple(k for k in _EXT if k.startswith(family)),
            )
        return file_ref(await self.storage.put(data, ctype))

    async def materialize(
        self, specs: Sequence[ParamSpec], params: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace every MediaSource in file slots by a stored file reference."""
        out = dict(params)
        for spec in specs:
            value = out.get(spec.name)
            if value is None:
                continue
            if isinstance(value, list):
                out[spec.name] = [
                    await self._store_input(spec, v) for v in value if isinstance(v, MediaSource)
                ]
            elif isinstance(value, MediaSource):
                out[spec.name] = await self._store_input(spec, value)
        return out

    def inputs(
        self, specs: Sequence[ParamSpec], params: Mapping[str, Any], base_url: str
    ) -> tuple[dict[str, Any], dict[str, list[MediaInput]]]:
        """Split stored params into plain params and provider-ready media inputs."""
        plain = dict(params)
        media: dict[str, list[MediaInput]] = {}
        for spec in specs:
            value = plain.get(spec.name)
            refs = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
            if refs and all(isinstance(r, dict) and "key" in r for r in refs):
                plain.pop(spec.name)
                media[spec.name] = [self._input(r, base_url) for r in refs]
        return plain, media

    def _input(self, ref: Mapping[str, Any], base_url: str) -> MediaInput:
        key = str(ref["key"])

        async def read() -> bytes:
            return await self.storage.read_all(key)

        return MediaInput(ref["content_type"], self.url(ref, base_url, "input"), read)

    # -- outputs --------------------------------------------------------------------------------

    async def _output_bytes(self, out: TaskOutput) -> tuple[bytes, str]:
        if out.data is not None:
            return out.data, out.content_type
        if not out.url:
            raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Provider output has no data or URL")
        try:
            fetched = await self._fetcher.fetch(out.url)
        except (FetchRejected, FetchFailed) as exc:
            raise UpstreamError(UpstreamKind.RETRYABLE, f"Result download failed: {exc}") from exc
        return fetched.data, sniff_content_type(fetched.data) or out.content_type

    async def rehost(self, outputs: Sequence[TaskOutput], kind: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        images: list[dict[str, Any]] = []
        for out in outputs:
            data, ctype = await self._output_bytes(out)
            ref = file_ref(await self.storage.put(data, ctype))
            if out.kind == "image":
                images.append(ref)
            else:
                result[out.kind] = ref
        if images:
            result["images"] = images
        if kind == "video" and "video" in result and "cover" not in result:
            video = await self.storage.read_all(result["video"]["key"])
            result["cover"] = file_ref(
                await self.storage.put(await first_frame_jpeg(video), "image/jpeg")
            )
        return result

    # -- URLs -----------------------------------------------------------------------------------

    def url(self, ref: Mapping[str, Any], base_url: str, name: str) -> str:
        filename = f"{name}.{_EXT.get(str(ref['content_type']), 'bin')}"
        return f"{base_url.rstrip('/')}/media/{self.token(ref, filename)}"

    def token(self, ref: Mapping[str, Any], filename: str) -> str:
        """A signed, expiring media token for a stored file reference."""
        return sign(str(ref["key"]), str(ref["content_type"]), filename, self._ttl, self._secret)

    # -- serving ---------------------------------------------------------------------------------

    def grant(self, token: str, now: float) -> MediaGrant:
        """What a media token grants; MediaTokenError if it is forged, damaged or expired."""
        return verify_grant(token, self._secret, now)

    async def size(self, key: str) -> int | None:
        """The stored object's size; None if there is none (or the key is not one of ours)."""
        try:
            return await self.storage.size(key)
        except ValueError:  # a signed key our storage cannot hold: a stale link from another setup
            return None

    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.storage.read(key, start, end)

    async def read_all(self, ref: Mapping[str, Any]) -> bytes:
        return await self.storage.read_all(str(ref["key"]))


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
