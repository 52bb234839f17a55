"""Catalog aliases (seed 002's reseller names); the seed 002/004 entries' parameters and prices."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmage.catalog import CatalogFormatError, load_catalog, load_catalog_file, parse_catalog
from llmage.domain.catalog import (
    Catalog,
    MediaPrice,
    ModelAlias,
    ModelEntry,
    ModelKind,
    apply_alias,
    overlay,
)
from llmage.domain.media_pricing import quote_media
from llmage.domain.params import InvalidParameterError, ParamSpec, normalize_params

T2V, I2V, R2V = ModelKind.T2V, ModelKind.I2V, ModelKind.R2V


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _expected_aliases() -> dict[str, tuple[str, tuple[ModelKind, ...], str, str]]:
    """Seed 002's pattern, written out: {p,t} x {plain, mix} x 3 resolutions x {peak, off-peak}."""
    out = {}
    for short, base in (("viduq3p", "viduq3-pro"), ("viduq3t", "viduq3-turbo")):
        for mix, kinds in (("", (T2V, I2V)), ("mix-", (R2V,))):
            for res in ("540p", "720p", "1080p"):
                out[f"{short}-{mix}{res}"] = (base, kinds, res, "N")
                out[f"{short}-{mix}{res}-offpeak"] = (base, kinds, res, "Y")
    return out


def test_the_alias_table(catalog: Catalog) -> None:
    expected = _expected_aliases()
    assert {a.name for a in catalog.aliases()} == set(expected)
    assert len(expected) == 24
    for name, (base, kinds, res, off_peak) in expected.items():
        alias = catalog.alias(name)
        assert alias is not None
        assert (alias.model, alias.kinds) == (base, kinds), name
        assert dict(alias.params) == {"resolution": res, "off_peak": off_peak}
    # The seed's own examples are among them.
    for name in ("viduq3p-540p", "viduq3t-1080p", "viduq3p-1080p-offpeak", "viduq3p-mix-720p"):
        assert catalog.alias(name) is not None
    assert catalog.alias("viduq3-pro") is None


def test_every_alias_reaches_a_model_of_each_kind(catalog: Catalog) -> None:
    for alias in catalog.aliases():
        kinds = {e.kind for e in catalog.by_name(alias.model)}
        assert set(alias.kinds) <= kinds, alias.name


def test_alias_prices(catalog: Catalog) -> None:
    """viduq3p-720p t2v 5 s = 3.00; off-peak half; turbo 0.6x; mix the same per second."""

    def price(name: str, kind: ModelKind, seconds: int) -> int:
        alias = catalog.alias(name)
        assert alias is not None
        entry = next(e for e in catalog.by_name(alias.model) if e.kind is kind)
        params = {**alias.params, "duration": seconds, "model": alias.model}
        return quote_media(entry, params)

    assert price("viduq3p-720p", T2V, 5) == 3_000_000
    assert price("viduq3p-720p-offpeak", T2V, 5) == 1_500_000
    assert price("viduq3t-720p", T2V, 5) == 1_800_000
    assert price("viduq3t-540p", I2V, 5) == 900_000
    assert price("viduq3p-mix-1080p", R2V, 4) == 3_200_000
    assert price("viduq3t-mix-1080p-offpeak", R2V, 4) == 960_000


def test_alias_for_reads_a_run_back(catalog: Catalog) -> None:
    t2v = next(e for e in catalog.by_name("viduq3-pro") if e.kind is T2V)
    r2v = next(e for e in catalog.by_name("viduq3-pro") if e.kind is R2V)
    params: dict[str, Any] = {"resolution": "720p", "off_peak": "Y", "duration": 5}
    assert catalog.alias_for(t2v, "viduq3-pro", params) == "viduq3p-720p-offpeak"
    assert catalog.alias_for(r2v, "viduq3-pro", params) == "viduq3p-mix-720p-offpeak"
    assert catalog.alias_for(t2v, "viduq3-turbo", params) == "viduq3t-720p-offpeak"
    assert catalog.alias_for(t2v, "viduq3-pro", {"resolution": "720p"}) is None
    kling = catalog.by_name("kling-v1")[0]
    assert catalog.alias_for(kling, "kling-v1", {}) is None


def test_apply_alias(catalog: Catalog) -> None:
    alias = catalog.alias("viduq3p-1080p-offpeak")
    assert alias is not None
    entry = next(e for e in catalog.by_name("viduq3-pro") if e.kind is T2V)
    assert apply_alias(alias, entry, {"prompt": "p"}) == {
        "prompt": "p", "resolution": "1080p", "off_peak": "Y",
    }  # fmt: skip
    same = apply_alias(alias, entry, {"resolution": "1080P", "off_peak": True})
    assert same == {"resolution": "1080p", "off_peak": "Y"}
    with pytest.raises(InvalidParameterError) as info:
        apply_alias(alias, entry, {"resolution": "720p"})
    assert info.value.param == "resolution" and info.value.allowed == ("1080p",)
    assert "viduq3p-1080p-offpeak" in info.value.message
    with pytest.raises(InvalidParameterError):
        apply_alias(alias, entry, {"off_peak": "N"})


# -- the new entries ----------------------------------------------------------------------------


def _entry(catalog: Catalog, name: str, kind: ModelKind) -> ModelEntry:
    found = [e for e in catalog.by_name(name) if e.kind is kind]
    assert found, (name, kind)
    return found[0]


def test_seed_004_parameters(catalog: Catalog) -> None:
    kling = _entry(catalog, "kling-v1", I2V)
    duration, mode, cfg = kling.param("duration"), kling.param("mode"), kling.param("cfg_scale")
    assert duration is not None and duration.enum == (5, 10)
    assert mode is not None and mode.enum == ("std", "pro") and mode.default == "std"
    assert cfg is not None and (cfg.minimum, cfg.maximum, cfg.default) == (0, 1, 0.5)
    assert kling.param("negative_prompt") is not None
    tail = kling.param("image2_file")
    assert tail is not None and not tail.required
    assert _entry(catalog, "kling-v1", T2V).param("image1_file") is None

    q1 = _entry(catalog, "viduq1", I2V)
    move, bgm = q1.param("movement_amplitude"), q1.param("bgm")
    assert move is not None and move.enum == ("auto", "small", "medium", "large")
    assert bgm is not None and bgm.type == "boolean"
    res, dur = q1.param("resolution"), q1.param("duration")
    assert res is not None and res.enum == ("1080p",)
    assert dur is not None and dur.enum == (5,)
    assert q1.param("seed") is not None

    jimeng = _entry(catalog, "jimeng_vgfm_i2v_l20", I2V)
    assert jimeng.param("image1_file") is not None and jimeng.param("seed") is not None
    ratio = _entry(catalog, "jimeng_vgfm_t2v_l20", T2V).param("ratio")
    assert ratio is not None and "21:9" in (ratio.enum or ())


def test_seed_002_reference_and_single_image_entries(catalog: Catalog) -> None:
    r2v = _entry(catalog, "viduq3-turbo", R2V)
    images = r2v.param("image_files")
    # viduq3-mix takes 1-4 images (PROVIDERS.md §11.8): more is refused here, not upstream.
    assert images is not None and images.required and images.max_items == 4
    single = _entry(catalog, "viduq3-turbo", I2V)
    first, last = single.param("image1_file"), single.param("image2_file")
    assert first is not None and first.required and last is not None and not last.required


def test_new_entry_prices(catalog: Catalog) -> None:
    def quote(name: str, kind: ModelKind, **params: Any) -> int:
        entry = _entry(catalog, name, kind)
        assert isinstance(entry.price, MediaPrice) and entry.price.unit == "second"
        normal = normalize_params(entry.params, {"prompt": "p", **params})  # defaults filled
        return quote_media(entry, {**normal, "model": name})

    assert quote("kling-v1", T2V, duration=5) == 1_000_000
    assert quote("kling-v1", I2V, duration=10, mode="pro", image1_file=b"x") == 7_000_000
    assert quote("jimeng_vgfm_t2v_l20", T2V, duration=10) == 3_000_000
    assert quote("viduq1", T2V) == 2_500_000  # 5 s, 1080p: the only values
    assert quote("viduq1", I2V, off_peak=True, image1_file=b"x") == 1_250_000


# -- validation and file format ---------------------------------------------------------------


def _video(llmid: str, name: str, kind: ModelKind = T2V) -> ModelEntry:
    return ModelEntry(
        llmid=llmid, vendor="v", platform="p", kind=kind, names=(name,), display_name=name,
        description="",
        params=(
            ParamSpec("prompt", "string", required=True),
            ParamSpec("duration", "integer", default=5),
            ParamSpec("resolution", "string", default="720p", enum=("720p", "1080p")),
        ),
        price=MediaPrice(unit="second", by="resolution", rates={"720p": 1, "1080p": 2}),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("alias", "match"),
    [
        (ModelAlias("m-hd", "nope", params={"resolution": "1080p"}), "no media model"),
        (ModelAlias("m-hd", "m", kinds=(I2V,)), "no media model"),
        (ModelAlias("m-hd", "m", kinds=(T2V, R2V)), "no r2v entry"),
        (ModelAlias("m-hd", "m", params={"fps": 24}), "no parameter 'fps'"),
        (ModelAlias("m-hd", "m", params={"resolution": "4k"}), "Allowed values: 720p, 1080p"),
        (ModelAlias("m", "m"), "hides a model name"),
        (ModelAlias("id-1", "m"), "hides a model name or llmid"),
    ],
)
def test_bad_aliases_are_refused(alias: ModelAlias, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Catalog([_video("id-1", "m")], [alias])


def test_duplicate_alias_refused() -> None:
    alias = ModelAlias("m-hd", "m", params={"resolution": "1080p"})
    with pytest.raises(ValueError, match="duplicate alias"):
        Catalog([_video("id-1", "m")], [alias, alias])


def test_overlay_keeps_and_overrides_aliases(catalog: Catalog) -> None:
    cheaper = ModelAlias("viduq3p-720p", "viduq3-pro", (T2V,), {"resolution": "540p"})
    merged = overlay(catalog, _with_alias(catalog, cheaper))
    assert len(merged.aliases()) == len(catalog.aliases())
    assert merged.alias("viduq3p-720p") == cheaper
    assert merged.alias("viduq3t-720p") == catalog.alias("viduq3t-720p")


def _with_alias(catalog: Catalog, alias: ModelAlias) -> Catalog:
    # An override file holds its own entries; the alias needs its target in the same catalog.
    vidu = [e for e in catalog.entries() if "viduq3-pro" in e.names]
    return Catalog(vidu, [alias])


def test_alias_file_format(tmp_path: Path) -> None:
    data = json.loads((Path(__file__).parents[2] / "src/llmage/catalog/models.json").read_text())
    data["aliases"] = {
        "_comment": "ignored",
        "hh-hd": {"model": "happyhorse-1.0-t2v", "params": {"resolution": "1080p"}, "notes": "x"},
    }
    parsed = parse_catalog(data)
    alias = parsed.alias("hh-hd")
    assert alias is not None and alias.kinds == () and alias.params == {"resolution": "1080p"}
    for bad, match in (
        ({"hh": {"model": "happyhorse-1.0-t2v", "kind": "t2v"}}, "unknown key"),
        ({"hh": {"model": "happyhorse-1.0-t2v", "kinds": ["x2v"]}}, "x2v"),
        ({"hh": {"model": ""}}, "'model'"),
        ({"hh": {"model": "happyhorse-1.0-t2v", "params": {"resolution": "8k"}}}, "8k"),
        (["hh"], "must be an object"),
    ):
        data["aliases"] = bad
        with pytest.raises(CatalogFormatError, match=match):
            parse_catalog(data)
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"version": 1, "models": [], "aliases": {}}), encoding="utf-8")
    assert load_catalog_file(path).aliases() == ()
