"""Every Seedance / Seedream / Dreamina llmid of seeds 000 and 001 resolves in the catalog to a
model the Ark or BytePlus adapter serves, and for every resolution and ratio the catalog
offers, the adapter either builds a create body the fake provider accepts (its own table of
what each model takes, written from the protocol) or refuses it before sending — never a body
the provider would reject."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ark_fake import (
    ARK_IMAGE,
    ARK_VIDEO,
    BYTEPLUS_VIDEO,
    Refused,
    validate_image,
    validate_video,
)

from llmage.catalog import load_catalog
from llmage.domain.catalog import ModelEntry, ModelKind
from llmage.domain.credentials import ApiKey
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.providers.ark.adapter import ArkAdapter
from llmage.providers.byteplus.adapter import BytePlusAdapter
from llmage.providers.contract import Channel
from llmage.providers.executor import TaskExecutor
from llmage.providers.registry import ProviderRegistry
from llmage.providers.tasks import MediaInput, TaskJob
from llmage.providers.upstream import MockUpstream
from llmage.providers.wire import UpstreamReply

# Seeds 000 and 001, by hand (not derived from the catalog under test).
SEED_LLMIDS = {
    "YjjGgxO_Xma8PWsMjJvps": "volcengine",  # Seedance 2.0 t2v
    "CrEMkFQfRCmbmopZsCqLj": "volcengine",  # Seedance 1.5 pro t2v
    "UeYax4591ytnPcr9eumry": "volcengine",  # Seedance 2.0 first + last frame
    "7RTOJD6K8A7RXCMG4GnQ9": "volcengine",  # Seedance 1.5 pro first (+ last) frame
    "dmPXF65TD1riKj9KaxLmg": "volcengine",  # Seedance 2.0 reference images/videos/audio
    "VooAIOtJdawpZjusWEzrh": "volcengine",  # seed 001: Seedance 1.5 pro reference images
    "TWay-xd0p0pkEX-_Kuhto": "byteplus",  # Dreamina Seedance 2.0 t2v
    "tb0VSY6WeyGbzaolU1_qE": "byteplus",  # Dreamina Seedance 2.0 first + last frame
    "nVbH7lEO51soqTbLGIHE_": "byteplus",  # Dreamina Seedance 2.0 reference
}
SEEDREAM_LLMIDS = ("ukxBfz2iMKNM45Zc2uZyI", "t0vqrNTIitfWZBC7ERqO4")
CATALOG = load_catalog()
ADAPTERS = {"volcengine": ArkAdapter(), "byteplus": BytePlusAdapter()}
FAKE_MODELS = {"volcengine": ARK_VIDEO, "byteplus": BYTEPLUS_VIDEO}
_MIME = {"image": "image/png", "images": "image/png", "video": "video/mp4",
         "videos": "video/mp4", "audio": "audio/wav", "audios": "audio/wav"}  # fmt: skip


async def _read() -> bytes:
    return b""


def _channel(platform: str) -> Channel:
    return Channel(
        id=1, name="c", provider="ark" if platform == "volcengine" else "byteplus",
        platform=platform, base_url="https://ark.example/api/v3",
        credentials=ApiKey("k-0123456789"), models=frozenset({"*"}), model_map={}, options={},
    )  # fmt: skip


def _job(entry: ModelEntry, model: str, **chosen: Any) -> TaskJob:
    """A request with every default filled and every file slot given (the fullest one)."""
    params: dict[str, Any] = {"prompt": "a cat"}
    media: dict[str, list[MediaInput]] = {}
    for spec in entry.params:
        if spec.is_file:
            count = 1 if spec.type in ("image", "video", "audio") else 2
            url = f"https://gw.example/media/{spec.name}"
            media[spec.name] = [MediaInput(_MIME[spec.type], url, _read)] * count
        elif spec.default is not None:
            params[spec.name] = spec.default
    params.update(chosen)
    kind = "image" if entry.kind.is_image else "video"
    return TaskJob("T1", kind, entry.kind.value, model, params, media)


def _cases() -> list[tuple[str, str, str, str]]:
    out = []
    for llmid, platform in SEED_LLMIDS.items():
        entry = CATALOG.by_llmid(llmid)
        assert entry is not None, llmid
        resolution = entry.param("resolution")
        assert resolution is not None and resolution.enum
        for model in entry.names:
            out += [(llmid, platform, model, str(r)) for r in resolution.enum]
    return out


def test_every_seed_llmid_is_in_the_catalog_on_its_platform() -> None:
    for llmid, platform in SEED_LLMIDS.items():
        entry = CATALOG.by_llmid(llmid)
        assert entry is not None, llmid
        assert entry.platform == platform and entry.kind.is_video
        assert entry.price.settle_unit == "mtoken"  # type: ignore[union-attr]
    for llmid in SEEDREAM_LLMIDS:
        entry = CATALOG.by_llmid(llmid)
        assert entry is not None and entry.kind in (ModelKind.T2I, ModelKind.I2I)


def test_the_registry_offers_both_providers_on_their_platforms() -> None:
    specs = {s: ProviderRegistry.spec(s) for s in ("ark", "byteplus")}
    assert specs["ark"] is not None and specs["ark"].platform == "volcengine"
    assert specs["byteplus"] is not None and specs["byteplus"].platform == "byteplus"
    assert specs["ark"].default_base_url == "https://ark.cn-beijing.volces.com/api/v3"
    assert specs["byteplus"].default_base_url == "https://ark.ap-southeast.bytepluses.com/api/v3"
    assert {"key", "pool"} <= set(specs["ark"].credentials)


@pytest.mark.parametrize(("llmid", "platform", "model", "resolution"), _cases())
def test_each_offered_setting_is_sent_as_the_provider_accepts_or_refused_first(
    llmid: str, platform: str, model: str, resolution: str
) -> None:
    entry = CATALOG.by_llmid(llmid)
    assert entry is not None
    adapter = ADAPTERS[platform]
    ratio = entry.param("ratio")
    for value in (ratio.enum or ()) if ratio else (None,):
        j = _job(entry, model, resolution=resolution, **({"ratio": value} if value else {}))
        ctx = TaskExecutor(MockUpstream(lambda r: UpstreamReply(200, {}, b"{}"))).context(
            adapter, _channel(platform)
        )
        try:
            request = adapter.submit_request(ctx, j)
        except UpstreamError as exc:
            assert exc.kind is UpstreamKind.BAD_REQUEST
            # Refused only for what the provider itself would refuse.
            upstream = FAKE_MODELS[platform].get(model)
            assert upstream is not None and resolution not in upstream.resolutions, exc.message
            continue
        body = json.loads(request.body)
        try:
            validate_video(body, FAKE_MODELS[platform])
        except Refused as exc:
            pytest.fail(f"{llmid} {model} {resolution} {value}: provider refuses: {exc}")


@pytest.mark.parametrize("llmid", SEEDREAM_LLMIDS)
def test_seedream_sizes_and_counts_are_accepted(llmid: str) -> None:
    entry = CATALOG.by_llmid(llmid)
    assert entry is not None
    size, n = entry.param("size"), entry.param("n")
    assert size is not None and size.enum and n is not None and n.maximum
    adapter = ArkAdapter()
    ctx = TaskExecutor(MockUpstream(lambda r: UpstreamReply(200, {}, b"{}"))).context(
        adapter, _channel("volcengine")
    )
    for value in size.enum:
        for count in range(1, int(n.maximum) + 1):
            j = _job(entry, entry.default_name, size=value, n=count)
            body = json.loads(adapter.submit_request(ctx, j).body)
            assert validate_image(body, ARK_IMAGE) == count
