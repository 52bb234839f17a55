"""The shipped catalog matches seed 000, and Catalog lookups behave as the dialects expect."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from llmage.catalog import CatalogFormatError, load_catalog, load_catalog_file
from llmage.domain.catalog import (
    Catalog,
    ChatPrice,
    MediaPrice,
    ModelEntry,
    ModelKind,
    UnknownModelError,
    model_json_schema,
    overlay,
)
from llmage.domain.params import InvalidParameterError, ParamSpec

S2_DOUBAO = ("doubao-seedance-2-0-260128", "doubao-seedance-2-0-fast-260128")
S2_DREAMINA = ("dreamina-seedance-2-0-260128", "dreamina-seedance-2-0-fast-260128")
S15 = ("doubao-seedance-1-5-pro-251215",)

# Seed 000, by hand: llmid -> (kind, vendor, names with the default first). Do not derive this
# from the data under test; a drift in either must fail here.
SEED_000_VIDEO = {
    "o5vfXYD5BURJWRTWpopE5": ("t2v", "阿里云", ("happyhorse-1.0-t2v",)),
    "YjjGgxO_Xma8PWsMjJvps": ("t2v", "豆包", S2_DOUBAO),
    "TWay-xd0p0pkEX-_Kuhto": ("t2v", "We Token AI", S2_DREAMINA),
    "CrEMkFQfRCmbmopZsCqLj": ("t2v", "豆包", S15),
    "u9HZyfDoqU6uKI6M1BTks": ("t2v", "通义万象", ("wan2.6-t2v",)),
    "r0ill7L0s6PtBS8mkmg-7": ("t2v", "vidu", ("viduq3-pro",)),
    "7y7kfYM0Xasizyi37WvAZ": ("i2v", "阿里云", ("happyhorse-1.0-i2v",)),
    "UeYax4591ytnPcr9eumry": ("i2v", "豆包", S2_DOUBAO),
    "tb0VSY6WeyGbzaolU1_qE": ("i2v", "We Token AI", S2_DREAMINA),
    "7RTOJD6K8A7RXCMG4GnQ9": ("i2v", "豆包", S15),
    "FK_h7FLYnosv2TkMN4ATC": ("i2v", "vidu", ("viduq3-pro", "viduq2-turbo")),
    "x4HksKp9mXR1Yv60mw6Py": ("i2v", "通义万象", ("wan2.6-r2v",)),
    "6o9n_7u2K927hNlD8_72f": ("r2v", "阿里云", ("happyhorse-1.0-r2v",)),
    "dmPXF65TD1riKj9KaxLmg": ("r2v", "豆包", S2_DOUBAO),
    "nVbH7lEO51soqTbLGIHE_": ("r2v", "We Token AI", S2_DREAMINA),
}

# Seed 001 adds one llmid of its own: Seedance 1.5 pro reference-to-video (1-3 images).
SEED_001_VIDEO = {"VooAIOtJdawpZjusWEzrh": ("r2v", "豆包", S15)}

# Seeds 002 and 004 (new-api style names), by hand: llmid -> (kind, vendor, platform, names).
SEED_002_004_VIDEO = {
    "3HE7KFJ7x3QHTVEiM5xvq": ("t2v", "vidu", "vidu", ("viduq3-turbo",)),
    "uJvMC95mczZLwKyOv4a6k": ("i2v", "vidu", "vidu", ("viduq3-pro", "viduq3-turbo")),
    "wc4m40vpx56o-N2LovGs0": ("r2v", "vidu", "vidu", ("viduq3-pro", "viduq3-turbo")),
    "KeeIqsjA0B_PBOBc9CvN9": ("t2v", "vidu", "vidu", ("viduq1",)),
    "Ye8oyKXdI-6zsLHQSGF4E": ("i2v", "vidu", "vidu", ("viduq1",)),
    "AV38wk4OdtbrT_5XHanLO": ("t2v", "可灵", "kling", ("kling-v1",)),
    "gmZnaxnP6dtVRR-4otnwL": ("i2v", "可灵", "kling", ("kling-v1",)),
    "Bsy6AvQ1kFzuhQl8N6j4k": ("t2v", "即梦", "jimeng", ("jimeng_vgfm_t2v_l20",)),
    "8u6Q25K1EpRa27fke8pcQ": ("i2v", "即梦", "jimeng", ("jimeng_vgfm_i2v_l20",)),
}

# Seed 001's reference-to-video row (its other rows are seed 000's llmids).
SEED_001_VIDEO = {
    "VooAIOtJdawpZjusWEzrh": ("r2v", "豆包", S15),
}

# Modes of seed models that no seed table lists but their provider serves (PROVIDERS.md §2):
# Wan 2.6 first-frame and Wan 2.6 reference-to-video (seed 000's wan2.6-r2v row is first+last).
PROVIDER_MODES_VIDEO = {
    "bQlmscR-lKX88DdB-hSi4": ("i2v", "通义万象", ("wan2.6-i2v",)),
    "z9aJjYSrK4iwNKwyZ1W7D": ("r2v", "通义万象", ("wan2.6-r2v",)),
}

# Jimeng 3.0 req_keys PROVIDERS.md §7 names (no seed lists them): llmid -> (kind, names).
JIMENG_30_VIDEO = {
    "jgpFLdYRccWavU-VUu0lS": ("t2v", ("jimeng_t2v_v30",)),
    "AK9S5-ygrzddQb85qLGmq": ("t2v", ("jimeng_t2v_v30_1080p",)),
    "5DevyiaMzMYbmRBC4bZm8": ("i2v", ("jimeng_i2v_first_v30",)),
    "TIbu8VCyqoRR9RwktHhHP": ("i2v", ("jimeng_i2v_first_v30_1080",)),
    "VKuIsOorr3zMMxdHUIGxI": ("i2v", ("jimeng_i2v_first_tail_v30",)),
    "QblsUJ-izBS0kSyBoUeuf": ("i2v", ("jimeng_i2v_first_tail_v30_1080",)),
    "PtGD8O7bfafhkKtkpwQoP": ("t2v", ("jimeng_ti2v_v30_pro",)),
    "g9bY2EPl6mJ5RzWaXRLdg": ("i2v", ("jimeng_ti2v_v30_pro",)),
}

CHAT_NAMES = {
    "qwen3-max": "aliyun",
    "qwen-plus": "aliyun",
    "qwen3-vl-plus": "aliyun",
    "doubao-seed-1-6-250615": "volcengine",
    "doubao-1-5-pro-32k-250115": "volcengine",
    "deepseek-chat": "deepseek",
    "deepseek-reasoner": "deepseek",
}

LLMID = re.compile(r"^[A-Za-z0-9_-]{21}$")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_every_seed_000_video_model_is_present(catalog: Catalog) -> None:
    for llmid, (kind, vendor, names) in (SEED_000_VIDEO | SEED_001_VIDEO).items():
        entry = catalog.by_llmid(llmid)
        assert entry is not None, llmid
        assert entry.kind == ModelKind(kind), llmid
        assert entry.vendor == vendor, llmid
        assert entry.names == names, llmid
        assert entry.default_name == names[0]


def test_video_models_are_exactly_the_seed_ones(catalog: Catalog) -> None:
    video = {e.llmid for e in catalog.entries() if e.kind.is_video}
    seeds = set(SEED_000_VIDEO) | set(SEED_001_VIDEO) | set(SEED_002_004_VIDEO)
    assert video == seeds | set(PROVIDER_MODES_VIDEO) | set(JIMENG_30_VIDEO)


def test_jimeng_30_models_are_present(catalog: Catalog) -> None:
    for llmid, (kind, names) in JIMENG_30_VIDEO.items():
        entry = catalog.by_llmid(llmid)
        assert entry is not None, llmid
        assert (entry.kind, entry.platform, entry.names) == (ModelKind(kind), "jimeng", names)
        ratio = entry.param("ratio")
        assert ratio is not None and "" not in (ratio.enum or ())  # never sent empty
    tail = catalog.by_llmid("VKuIsOorr3zMMxdHUIGxI")
    assert tail is not None
    last = tail.param("image2_file")
    assert last is not None and last.required


def test_seed_001_and_provider_modes_are_present(catalog: Catalog) -> None:
    for llmid, (kind, vendor, names) in {**SEED_001_VIDEO, **PROVIDER_MODES_VIDEO}.items():
        entry = catalog.by_llmid(llmid)
        assert entry is not None, llmid
        assert (entry.kind, entry.vendor, entry.names) == (ModelKind(kind), vendor, names)


def test_seed_002_004_video_models_are_present(catalog: Catalog) -> None:
    for llmid, (kind, vendor, platform, names) in SEED_002_004_VIDEO.items():
        entry = catalog.by_llmid(llmid)
        assert entry is not None, llmid
        assert (entry.kind, entry.vendor, entry.platform) == (ModelKind(kind), vendor, platform)
        assert entry.names == names, llmid


def test_platforms_follow_the_vendor(catalog: Catalog) -> None:
    expected = {"阿里云": "aliyun", "通义万象": "aliyun", "豆包": "volcengine"}
    expected |= {"We Token AI": "byteplus", "vidu": "vidu", "可灵": "kling", "即梦": "jimeng"}
    for llmid in [*SEED_000_VIDEO, *SEED_001_VIDEO, *SEED_002_004_VIDEO]:
        entry = catalog.by_llmid(llmid)
        assert entry is not None
        assert entry.platform == expected[entry.vendor]


def test_every_video_model_has_prompt_and_duration(catalog: Catalog) -> None:
    for entry in catalog.entries():
        if not entry.kind.is_video:
            continue
        prompt = entry.param("prompt")
        assert prompt is not None and prompt.required, entry.llmid
        duration = entry.param("duration")
        assert duration is not None and duration.type == "integer", entry.llmid
        assert duration.default is not None
        # Kling has no resolution field: its std/pro mode decides quality and price.
        assert entry.param("resolution") or entry.param("size") or entry.param("mode")
        assert isinstance(entry.price, MediaPrice) and entry.price.unit == "second"


def test_seed_parameter_quirks(catalog: Catalog) -> None:
    wan = catalog.by_llmid("u9HZyfDoqU6uKI6M1BTks")
    assert wan is not None
    size, duration = wan.param("size"), wan.param("duration")
    assert size is not None and size.default == "1920*1080" and size.enum is not None
    assert len(size.enum) == 13
    assert duration is not None and duration.enum == (5, 10, 15) and duration.default == 15

    vidu = catalog.by_llmid("r0ill7L0s6PtBS8mkmg-7")
    assert vidu is not None
    off_peak, vdur = vidu.param("off_peak"), vidu.param("duration")
    assert off_peak is not None and off_peak.enum == ("Y", "N") and off_peak.default == "N"
    assert vdur is not None and (vdur.minimum, vdur.maximum, vdur.default) == (1, 16, 10)

    s15 = catalog.by_llmid("CrEMkFQfRCmbmopZsCqLj")
    assert s15 is not None
    ratio = s15.param("ratio")
    assert ratio is not None and "radio" in ratio.aliases and "keep_ratio" in (ratio.enum or ())

    hh = catalog.by_llmid("7y7kfYM0Xasizyi37WvAZ")
    assert hh is not None
    res = hh.param("resolution")
    assert res is not None and res.case_insensitive and res.default == "720p"

    r2v = catalog.by_llmid("dmPXF65TD1riKj9KaxLmg")
    assert r2v is not None
    images = r2v.param("image_files")
    assert images is not None and images.required and images.max_items == 9
    assert r2v.param("video_files") is not None and r2v.param("audio_files") is not None


def test_one_canonical_name_per_file_slot(catalog: Catalog) -> None:
    for entry in catalog.entries():
        names = {p.name for p in entry.params}
        assert not names & {"image_file1", "image_file2", "radio"}, entry.llmid
        for slot, alias in (("image1_file", "image_file1"), ("image2_file", "image_file2")):
            spec = entry.param(slot)
            if spec is not None:
                assert alias in spec.aliases


def test_chat_models(catalog: Catalog) -> None:
    for name, platform in CHAT_NAMES.items():
        found = catalog.chat_model(name)
        assert found is not None, name
        entry, concrete = found
        assert concrete == name and entry.platform == platform
        assert entry.kind is ModelKind.CHAT and entry.params == ()
        assert isinstance(entry.price, ChatPrice)
        assert entry.price.output_per_mtok >= entry.price.input_per_mtok > 0
        assert entry.max_output_tokens and entry.context_window
        assert entry.max_output_tokens <= entry.context_window
    qwen = catalog.chat_model("qwen3-max")
    assert qwen is not None and qwen[0].price == ChatPrice(6_000_000, 24_000_000, 1_200_000)


def test_all_llmids_share_the_seed_style_and_are_unique(catalog: Catalog) -> None:
    ids = [e.llmid for e in catalog.entries()]
    assert len(ids) == len(set(ids))
    assert all(LLMID.match(i) for i in ids), ids


def test_image_models(catalog: Catalog) -> None:
    seedream = catalog.by_name("doubao-seedream-4-0-250828")
    assert {e.kind for e in seedream} == {ModelKind.T2I, ModelKind.I2I}
    assert catalog.by_name("qwen-image")[0].kind is ModelKind.T2I
    for entry in catalog.of_kind(ModelKind.T2I, ModelKind.I2I):
        n = entry.param("n")
        assert n is not None and (n.minimum, n.maximum) == (1, 4)
        assert isinstance(entry.price, MediaPrice) and entry.price.unit == "image"


def test_chat_model_by_llmid_gives_default_name(catalog: Catalog) -> None:
    entry = catalog.chat_model("deepseek-chat")
    assert entry is not None
    assert catalog.chat_model(entry[0].llmid) == (entry[0], "deepseek-chat")
    # Video llmids and names are not chat models.
    assert catalog.chat_model("CrEMkFQfRCmbmopZsCqLj") is None
    assert catalog.chat_model("wan2.6-t2v") is None
    assert catalog.chat_model("gpt-nope") is None


def test_by_name_finds_every_kind(catalog: Catalog) -> None:
    kinds = sorted(e.kind for e in catalog.by_name("doubao-seedance-2-0-fast-260128"))
    assert kinds == ["i2v", "r2v", "t2v"]
    assert catalog.by_name("nope") == []


def test_resolve_native(catalog: Catalog) -> None:
    entry, name = catalog.resolve_native("dmPXF65TD1riKj9KaxLmg", None)
    assert name == "doubao-seedance-2-0-260128" and entry.kind is ModelKind.R2V
    _, name = catalog.resolve_native("dmPXF65TD1riKj9KaxLmg", "doubao-seedance-2-0-fast-260128")
    assert name == "doubao-seedance-2-0-fast-260128"
    _, name = catalog.resolve_native("FK_h7FLYnosv2TkMN4ATC", "")
    assert name == "viduq3-pro"


def test_resolve_native_errors(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as unknown:
        catalog.resolve_native("no-such-llmid", None)
    assert unknown.value.model == "no-such-llmid"
    with pytest.raises(InvalidParameterError) as bad:
        catalog.resolve_native("CrEMkFQfRCmbmopZsCqLj", "dreamina-seedance-2-0-260128")
    assert bad.value.param == "model"
    assert bad.value.allowed == S15
    assert "doubao-seedance-1-5-pro-251215" in bad.value.message


def _entry(llmid: str, name: str = "m", kind: ModelKind = ModelKind.CHAT) -> ModelEntry:
    return ModelEntry(
        llmid=llmid,
        vendor="v",
        platform="openai",
        kind=kind,
        names=(name,),
        display_name=name,
        description="",
        params=(),
        price=ChatPrice(1, 2),
    )


def test_duplicate_llmid_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate llmid"):
        Catalog([_entry("a", "x"), _entry("a", "y")])


def test_entry_validation() -> None:
    with pytest.raises(ValueError, match="chat model name"):
        Catalog([_entry("a", "x"), _entry("b", "x")])
    bad_price = ModelEntry(
        llmid="v",
        vendor="v",
        platform="vidu",
        kind=ModelKind.T2V,
        names=("m",),
        display_name="m",
        description="",
        params=(ParamSpec("prompt", "string", required=True),),
        price=MediaPrice(unit="second", by="resolution", rates={"720p": 1}),
    )
    with pytest.raises(ValueError, match="resolution"):
        Catalog([bad_price])


def test_overlay_replaces_and_adds(catalog: Catalog) -> None:
    qwen = catalog.chat_model("qwen3-max")
    assert qwen is not None
    cheaper = dataclasses.replace(qwen[0], price=ChatPrice(1, 1))
    merged = overlay(catalog, Catalog([cheaper, _entry("new-one", "my-model")]))
    assert len(merged) == len(catalog) + 1
    again = merged.chat_model("qwen3-max")
    assert again is not None and again[0].price == ChatPrice(1, 1)
    assert merged.entries()[0].llmid == catalog.entries()[0].llmid  # order kept


def test_load_catalog_is_cached() -> None:
    assert load_catalog() is load_catalog()


def test_load_catalog_file_with_shared_param_set(tmp_path: Path) -> None:
    data = {
        "version": 1,
        "models": [
            {
                "llmid": "AdminModel00000000001",
                "vendor": "豆包",
                "platform": "volcengine",
                "kind": "t2v",
                "names": ["doubao-seedance-1-5-pro-251215"],
                "params": "seedance15-t2v",
                "price": {"unit": "second", "by": "resolution", "rates": {"*": 100000}},
                "notes": "ignored",
            }
        ],
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    loaded = load_catalog_file(path)
    entry = loaded.by_llmid("AdminModel00000000001")
    assert entry is not None and entry.param("ratio") is not None
    assert entry.display_name == "doubao-seedance-1-5-pro-251215"


def test_load_catalog_file_rejects_typos(tmp_path: Path) -> None:
    data = {"models": [{"llmid": "x", "requried": True}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CatalogFormatError, match="requried"):
        load_catalog_file(path)
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(CatalogFormatError, match="invalid JSON"):
        load_catalog_file(path)


def test_model_json_schema_has_llmid_and_model(catalog: Catalog) -> None:
    entry = catalog.by_llmid("FK_h7FLYnosv2TkMN4ATC")
    assert entry is not None
    schema = model_json_schema(entry)
    props = schema["properties"]
    assert isinstance(props, dict)
    assert props["llmid"]["const"] == "FK_h7FLYnosv2TkMN4ATC"
    assert props["model"]["enum"] == ["viduq3-pro", "viduq2-turbo"]
    assert schema["required"] == ["llmid", "prompt", "image1_file", "image2_file"]
