"""quote_media: quantity x rate x multipliers, exact and rounded up."""

from __future__ import annotations

import dataclasses

import pytest

from llmage.catalog import load_catalog
from llmage.domain.catalog import ChatPrice, MediaPrice, ModelEntry, ModelKind
from llmage.domain.media_pricing import quote_media
from llmage.domain.params import (
    InvalidParameterError,
    MissingParameterError,
    ParamSpec,
    normalize_params,
)

DURATION = ParamSpec("duration", "integer", default=5)
RESOLUTION = ParamSpec("resolution", "string", default="720p", enum=("480p", "720p"))


def video(price: MediaPrice) -> ModelEntry:
    return ModelEntry(
        llmid="test-video",
        vendor="t",
        platform="vidu",
        kind=ModelKind.T2V,
        names=("m", "m-fast"),
        display_name="m",
        description="",
        params=(ParamSpec("prompt", "string", required=True), DURATION, RESOLUTION),
        price=price,
    )


def catalog_entry(llmid: str) -> ModelEntry:
    found = load_catalog().by_llmid(llmid)
    assert found is not None
    return found


def test_duration_times_rate_for_resolution() -> None:
    model = video(MediaPrice("second", "resolution", {"480p": 200_000, "720p": 450_000}))
    assert quote_media(model, {"duration": 5, "resolution": "480p"}) == 1_000_000
    assert quote_media(model, {"duration": 12, "resolution": "720p"}) == 5_400_000


def test_rate_lookup_ignores_case_and_falls_back_to_star() -> None:
    model = video(MediaPrice("second", "resolution", {"720p": 3, "*": 1}))
    assert quote_media(model, {"duration": 2, "resolution": "720P"}) == 6
    assert quote_media(model, {"duration": 2, "resolution": "480p"}) == 2


def test_unpriced_value_is_an_invalid_parameter() -> None:
    model = video(MediaPrice("second", "resolution", {"720p": 3}))
    with pytest.raises(InvalidParameterError) as err:
        quote_media(model, {"duration": 2, "resolution": "480p"})
    assert err.value.param == "resolution" and err.value.allowed == ("720p",)


def test_missing_duration_uses_spec_default() -> None:
    model = video(MediaPrice("second", None, {"*": 100}))
    assert quote_media(model, {}) == 500


def test_multiplier_and_rounding_up() -> None:
    price = MediaPrice(
        "second",
        "resolution",
        {"720p": 333_333},
        {"off_peak": {"Y": 0.5}, "model": {"m-fast": 0.1}},
    )
    model = video(price)
    # 333_333 * 3 * 0.5 = 499_999.5 -> 500_000 (never undercharge)
    assert quote_media(model, {"duration": 3, "resolution": "720p", "off_peak": "Y"}) == 500_000
    assert quote_media(model, {"duration": 3, "resolution": "720p", "off_peak": "N"}) == 999_999
    # 0.1 is exactly one tenth, not 0.1000000000000000055...: 999_999 * 0.1 = 99_999.9 -> 100_000
    assert quote_media(model, {"duration": 3, "resolution": "720p", "model": "m-fast"}) == 100_000
    # a boolean off_peak is read as Y/N
    assert quote_media(model, {"duration": 3, "resolution": "720p", "off_peak": True}) == 500_000


def test_exact_products_are_not_rounded_up() -> None:
    model = video(MediaPrice("second", None, {"*": 10}, {"off_peak": {"Y": 0.3}}))
    assert quote_media(model, {"duration": 10, "off_peak": "Y"}) == 30


def test_seedance_15_catalog_prices() -> None:
    s15 = catalog_entry("CrEMkFQfRCmbmopZsCqLj")
    params = normalize_params(s15.params, {"prompt": "p", "duration": "5", "resolution": "480p"})
    assert quote_media(s15, params) == 5 * 200_000
    # defaults: 1080p for 12 s
    assert quote_media(s15, normalize_params(s15.params, {"prompt": "p"})) == 12 * 1_000_000


def test_vidu_off_peak_halves_the_price() -> None:
    vidu = catalog_entry("r0ill7L0s6PtBS8mkmg-7")
    peak = quote_media(vidu, normalize_params(vidu.params, {"prompt": "p", "duration": 4}))
    off = quote_media(
        vidu, normalize_params(vidu.params, {"prompt": "p", "duration": 4, "off_peak": "Y"})
    )
    assert peak > 0 and off * 2 == peak


def test_wan_priced_by_size_tier() -> None:
    wan = catalog_entry("u9HZyfDoqU6uKI6M1BTks")
    full_hd = quote_media(wan, normalize_params(wan.params, {"prompt": "p", "duration": 5}))
    hd = quote_media(
        wan, normalize_params(wan.params, {"prompt": "p", "duration": 5, "size": "1280*720"})
    )
    assert full_hd > hd > 0


def test_seedance_2_fast_is_cheaper() -> None:
    s2 = catalog_entry("YjjGgxO_Xma8PWsMjJvps")
    base = normalize_params(s2.params, {"prompt": "p"})
    fast = {**base, "model": "doubao-seedance-2-0-fast-260128"}
    assert 0 < quote_media(s2, fast) < quote_media(s2, base)


def test_every_catalog_media_model_quotes_with_defaults() -> None:
    for model in load_catalog().entries():
        if model.kind is ModelKind.CHAT:
            continue
        raw: dict[str, object] = {"prompt": "p"}
        for spec in model.params:
            if spec.required and spec.is_file:
                raw[spec.name] = [b"x"] if spec.type.endswith("s") else b"x"
        assert quote_media(model, normalize_params(model.params, raw)) > 0, model.llmid


def test_images_priced_per_image() -> None:
    seedream = next(
        e for e in load_catalog().by_name("doubao-seedream-4-0-250828") if e.kind is ModelKind.T2I
    )
    one = quote_media(seedream, normalize_params(seedream.params, {"prompt": "p"}))
    four = quote_media(seedream, normalize_params(seedream.params, {"prompt": "p", "n": "4"}))
    assert four == 4 * one > 0


def test_missing_duration_without_default_raises() -> None:
    model = ModelEntry(
        llmid="no-default",
        vendor="t",
        platform="vidu",
        kind=ModelKind.T2V,
        names=("m",),
        display_name="m",
        description="",
        params=(ParamSpec("duration", "integer"),),
        price=MediaPrice("second", None, {"*": 1}),
    )
    with pytest.raises(MissingParameterError) as err:
        quote_media(model, {})
    assert err.value.param == "duration"


def test_chat_entries_cannot_be_quoted_as_media() -> None:
    chat = ModelEntry(
        llmid="c",
        vendor="v",
        platform="openai",
        kind=ModelKind.CHAT,
        names=("c",),
        display_name="c",
        description="",
        params=(),
        price=ChatPrice(1, 1),
    )
    with pytest.raises(TypeError):
        quote_media(chat, {})


def test_media_price_validation() -> None:
    with pytest.raises(ValueError):
        MediaPrice("minute", None, {"*": 1})
    with pytest.raises(ValueError):
        MediaPrice("second", None, {"720p": 1})
    with pytest.raises(ValueError):
        MediaPrice("second", "resolution", {"720p": -1})


def test_settle_prices_price_what_the_upstream_reports() -> None:
    """Ark bills tokens, Vidu credits: the hold is quoted per second (worst case), the charge
    from the reported usage at the settle rates; without a report, the request price."""
    base = load_catalog().by_llmid("YjjGgxO_Xma8PWsMjJvps")  # seedance 2.0 t2v
    assert base is not None
    price = MediaPrice(
        unit="second",
        by="resolution",
        rates={"480p": 300_000, "720p": 1_000_000},
        settle_unit="mtoken",
        settle_rates={"480p": 46_000_000, "720p": 46_000_000},
    )
    entry = dataclasses.replace(base, price=price)
    params = {"prompt": "x", "resolution": "720p", "duration": 5}
    assert quote_media(entry, params) == 5_000_000
    # 108,900 tokens at 46 CNY per million = 5.0094 CNY, rounded up to a micro-unit.
    assert quote_media(entry, {**params, "tokens": 108_900}) == 5_009_400
    credits = dataclasses.replace(
        entry, price=dataclasses.replace(price, settle_unit="credit", settle_rates={"*": 31_250})
    )
    assert quote_media(credits, {**params, "credits": 20}) == 625_000
    with pytest.raises(ValueError, match="settle"):
        MediaPrice(unit="second", by=None, rates={"*": 1}, settle_unit="credit",
                   settle_rates={"720p": 1})  # fmt: skip


def test_settle_multipliers_replace_the_price_multipliers() -> None:
    """Vidu credits already count the off-peak discount: the credit charge is not halved again,
    while the hold (per second) still is; without a settle block of its own the price's
    multipliers apply to the settled charge too."""
    entry = load_catalog().by_llmid("r0ill7L0s6PtBS8mkmg-7")  # viduq3-pro t2v
    assert entry is not None and isinstance(entry.price, MediaPrice)
    assert entry.price.settle_unit == "credit" and entry.price.settle_multipliers == {}
    off_peak = {"prompt": "x", "resolution": "1080p", "duration": 5, "off_peak": "Y"}
    assert quote_media(entry, off_peak) == 2_000_000  # 0.8/s x 5 s x 0.5: the hold
    # 80 credits (16/s off-peak) at 0.025 a credit, no second halving.
    assert quote_media(entry, {**off_peak, "credits": 80}) == 2_000_000
    assert quote_media(entry, {**off_peak, "resolution": "720p", "credits": 75}) == 1_500_000
    price = dataclasses.replace(entry.price, settle_multipliers=None)
    inherited = dataclasses.replace(entry, price=price)
    assert quote_media(inherited, {**off_peak, "credits": 80}) == 1_000_000
    with pytest.raises(ValueError, match="multiplier"):
        dataclasses.replace(entry.price, settle_multipliers={"off_peak": {"Y": -1}})
