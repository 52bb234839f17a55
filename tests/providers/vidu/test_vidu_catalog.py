"""Every Vidu model name the seeds use reaches a Vidu channel correctly: the llmids of seeds 000
and 001, seed 002's reseller aliases (model + resolution + off-peak + mix mode) and seed 004's
`viduq1`, each translated by its dialect, validated by the catalog and built by the adapter into
the create Vidu expects (endpoint, model, resolution, off-peak). Pure: no server."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from llmage.catalog import load_catalog
from llmage.dialects.newapi.translate import translate_submit
from llmage.domain.catalog import MediaPrice, ModelEntry
from llmage.domain.credentials import ApiKey
from llmage.domain.params import normalize_params
from llmage.domain.tasks import MediaSource
from llmage.providers.contract import Channel
from llmage.providers.registry import SPECS
from llmage.providers.tasks import CallContext, MediaInput, TaskJob
from llmage.providers.vidu.adapter import ViduAdapter

CATALOG = load_catalog()
ADAPTER = ViduAdapter()
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
CHANNEL_MODELS = frozenset({"viduq3-pro", "viduq3-turbo", "viduq2-turbo", "viduq1"})
# llmid -> (kind, default model) as seeds 000 and 001 list them
SEED_000_001 = {
    "r0ill7L0s6PtBS8mkmg-7": ("t2v", "viduq3-pro"),
    "FK_h7FLYnosv2TkMN4ATC": ("i2v", "viduq3-pro"),
}
VIDU_ALIASES = sorted(a.name for a in CATALOG.aliases() if a.name.startswith("vidu"))


def _ctx() -> CallContext:
    ch = Channel(
        id=1,
        name="vidu",
        provider="vidu",
        platform="vidu",
        base_url="",
        credentials=ApiKey("k" * 20),
        models=CHANNEL_MODELS,
        model_map={},
        options={},
    )
    return CallContext(ch, ApiKey("k" * 20), 0.0, ADAPTER.default_base_url)


def _build(entry: ModelEntry, model: str, raw: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What the gateway would send upstream for this request: (path, JSON body)."""
    params = normalize_params(entry.params, raw)
    media: dict[str, list[MediaInput]] = {}
    plain: dict[str, Any] = {}
    for name, value in params.items():
        files = value if isinstance(value, list) else [value]
        if files and all(isinstance(f, MediaSource) for f in files):

            async def read() -> bytes:
                return b""

            media[name] = [
                MediaInput("image/png", f"https://gw/{name}/{i}", read) for i in range(len(files))
            ]
        else:
            plain[name] = value
    job = TaskJob("T" * 21, "video", entry.kind.value, model, plain, media, entry.llmid)
    request = ADAPTER.submit_request(_ctx(), job)
    return request.url.rsplit("/", 1)[1], orjson.loads(request.body)


def test_the_registry_offers_vidu() -> None:
    spec = SPECS["vidu"]
    assert (spec.platform, spec.credentials, spec.default_base_url) == (
        "vidu",
        ("key", "pool"),
        "https://api.vidu.cn",
    )
    assert spec.task is ViduAdapter


@pytest.mark.parametrize("llmid", sorted(SEED_000_001))
def test_seed_000_001_llmids(llmid: str) -> None:
    entry = CATALOG.by_llmid(llmid)
    assert entry is not None and entry.platform == "vidu"
    kind, model = SEED_000_001[llmid]
    assert (entry.kind.value, entry.default_name) == (kind, model)
    assert set(entry.names) <= CHANNEL_MODELS
    assert isinstance(entry.price, MediaPrice) and entry.price.settle_unit == "credit"
    raw: dict[str, Any] = {"prompt": "p", "off_peak": "Y"}
    if kind == "i2v":
        raw |= {"image1_file": MediaSource(data=b"a"), "image2_file": MediaSource(data=b"b")}
    path, body = _build(entry, model, raw)
    assert path == ("text2video" if kind == "t2v" else "start-end2video")
    # Seed defaults (10 s, 1080p, 16:9 for text) and Y/N → a boolean.
    assert (body["duration"], body["resolution"], body["off_peak"]) == (10, "1080p", True)
    assert ("aspect_ratio" in body) == (kind == "t2v")


@pytest.mark.parametrize("name", VIDU_ALIASES)
def test_seed_002_aliases(name: str) -> None:
    alias = CATALOG.alias(name)
    assert alias is not None
    mix = "-mix-" in name
    body: dict[str, Any] = {"model": name, "prompt": "@Image1 walks", "duration": 5}
    if mix:
        body["reference_image_urls"] = [PNG, PNG]
    submits = (
        [body] if mix else [body, {**body, "image": PNG}, {**body, "image": PNG, "last_image": PNG}]
    )
    for sent in submits:
        got = translate_submit(sent, CATALOG)
        entry, draft = got.entry, got.draft
        assert entry.platform == "vidu" and draft.model in CHANNEL_MODELS
        path, upstream = _build(entry, str(draft.model), draft.raw)
        assert upstream["model"] == (
            "viduq3-mix" if mix else "viduq3-pro" if name.startswith("viduq3p") else "viduq3-turbo"
        )
        assert upstream["resolution"] == name.split("-")[-2 if name.endswith("offpeak") else -1]
        assert upstream.get("off_peak", False) is name.endswith("-offpeak")
        images = len(upstream.get("images", []))
        expected = {0: "text2video", 1: "img2video", 2: "start-end2video"}[images]
        assert path == ("reference2video" if mix else expected)


def test_seed_004_viduq1() -> None:
    body = {
        "model": "viduq1",
        "prompt": "astronaut",
        "size": "1920x1080",
        "image": PNG,
        "duration": 5,
        "metadata": {
            "duration": 5,
            "seed": 0,
            "resolution": "1080p",
            "movement_amplitude": "auto",
            "bgm": False,
            "payload": "",
        },
    }
    got = translate_submit(body, CATALOG)
    assert got.entry.llmid == "Ye8oyKXdI-6zsLHQSGF4E"
    path, upstream = _build(got.entry, str(got.draft.model), got.draft.raw)
    assert path == "img2video"
    assert {k: upstream[k] for k in ("model", "duration", "resolution", "seed", "bgm")} == {
        "model": "viduq1",
        "duration": 5,
        "resolution": "1080p",
        "seed": 0,
        "bgm": False,
    }
    assert upstream["payload"] == "T" * 21  # ours, not the client's empty one
    text = translate_submit({"model": "viduq1", "prompt": "astronaut"}, CATALOG)
    assert text.entry.llmid == "KeeIqsjA0B_PBOBc9CvN9"
    assert _build(text.entry, "viduq1", text.draft.raw)[0] == "text2video"
