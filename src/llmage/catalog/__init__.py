"""The shipped model catalog (models.json) and the parser for admin-supplied catalog files.

File format (see the `_comment` of models.json): `{"version": 1, "currency": "CNY",
"param_sets": {name: [param, ...]}, "models": [entry, ...], "aliases": {name: alias}}`. An entry's
`params` is either a list of parameter objects or the name of a param set; sets are shared because
several llmids (t2v/i2v/r2v, Ark/BytePlus) take the same table. An alias is `{"model": base name,
"kinds": [t2v|i2v|r2v...] (optional: all), "params": {name: fixed value}, "description"}`. Keys
starting with `_` and `notes` are comments.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from llmage.domain.catalog import (
    Catalog,
    ChatPrice,
    MediaPrice,
    ModelAlias,
    ModelEntry,
    ModelKind,
)
from llmage.domain.params import ParamSpec

__all__ = ["CatalogFormatError", "load_catalog", "load_catalog_file", "parse_catalog"]

SHIPPED_FILE = "models.json"
SUPPORTED_VERSIONS = (1,)

_PARAM_KEYS = frozenset(ParamSpec.__dataclass_fields__)
_ENTRY_KEYS = frozenset(
    {
        "llmid",
        "vendor",
        "platform",
        "kind",
        "names",
        "display_name",
        "description",
        "params",
        "price",
        "max_output_tokens",
        "context_window",
        "capabilities",
    }
)


class CatalogFormatError(ValueError):
    """A catalog file that cannot be used; the message says where."""


def _is_comment(key: str) -> bool:
    return key.startswith("_") or key == "notes"


def _check_keys(obj: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    # Typos in a hand-edited file ("requried") must fail loudly, not silently drop a rule.
    unknown = sorted(k for k in obj if k not in allowed and not _is_comment(k))
    if unknown:
        raise CatalogFormatError(f"{where}: unknown key(s) {', '.join(unknown)}")


def _opt_tuple(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _frozen(value: Any) -> Any:
    # Shared specs must not hand out a mutable default that one request could alter for all.
    return tuple(value) if isinstance(value, list) else value


def _parse_param(obj: Any, where: str) -> ParamSpec:
    if not isinstance(obj, dict):
        raise CatalogFormatError(f"{where}: a parameter must be an object")
    _check_keys(obj, _PARAM_KEYS, where)
    try:
        return ParamSpec(
            name=obj["name"],
            type=obj["type"],
            required=bool(obj.get("required", False)),
            default=_frozen(obj.get("default")),
            enum=_opt_tuple(obj.get("enum")),
            minimum=obj.get("minimum"),
            maximum=obj.get("maximum"),
            aliases=tuple(obj.get("aliases", ())),
            max_items=obj.get("max_items"),
            description=obj.get("description", ""),
            case_insensitive=bool(obj.get("case_insensitive", False)),
        )
    except KeyError as exc:
        raise CatalogFormatError(f"{where}: missing {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise CatalogFormatError(f"{where}: {exc}") from None


def _parse_params(
    value: Any, sets: Mapping[str, tuple[ParamSpec, ...]], where: str
) -> tuple[ParamSpec, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        if value not in sets:
            raise CatalogFormatError(f"{where}: unknown param set {value!r}")
        return sets[value]
    if not isinstance(value, list):
        raise CatalogFormatError(f"{where}: params must be a list or a param set name")
    return tuple(_parse_param(p, f"{where}.params[{i}]") for i, p in enumerate(value))


def _multipliers(obj: Any) -> MappingProxyType[str, MappingProxyType[str, Any]]:
    return MappingProxyType(
        {
            str(param): MappingProxyType({str(k): v for k, v in table.items()})
            for param, table in obj.items()
        }
    )


def _parse_price(obj: Any, where: str) -> ChatPrice | MediaPrice:
    if not isinstance(obj, dict):
        raise CatalogFormatError(f"{where}: price must be an object")
    try:
        if "unit" in obj:
            _check_keys(obj, frozenset({"unit", "by", "rates", "multipliers", "settle"}), where)
            settle = obj.get("settle") or {}
            if settle:
                _check_keys(settle, frozenset({"unit", "rates", "multipliers"}), f"{where}.settle")
            multipliers = _multipliers(obj.get("multipliers", {}))
            return MediaPrice(
                unit=obj["unit"],
                by=obj.get("by"),
                rates=MappingProxyType({str(k): v for k, v in obj["rates"].items()}),
                multipliers=multipliers,
                settle_unit=settle.get("unit"),
                settle_rates=MappingProxyType(
                    {str(k): v for k, v in settle.get("rates", {}).items()}
                ),
                settle_multipliers=(
                    _multipliers(settle["multipliers"]) if "multipliers" in settle else None
                ),
            )
        _check_keys(
            obj, frozenset({"input_per_mtok", "output_per_mtok", "cached_input_per_mtok"}), where
        )
        price = ChatPrice(
            input_per_mtok=obj["input_per_mtok"],
            output_per_mtok=obj["output_per_mtok"],
            cached_input_per_mtok=obj.get("cached_input_per_mtok"),
        )
    except KeyError as exc:
        raise CatalogFormatError(f"{where}: missing {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CatalogFormatError(f"{where}: {exc}") from None
    for amount in (price.input_per_mtok, price.output_per_mtok, price.cached_input_per_mtok):
        if amount is not None and (not isinstance(amount, int) or amount < 0):
            raise CatalogFormatError(f"{where}: token prices are non-negative integer micro-units")
    return price


def _parse_entry(obj: Any, sets: Mapping[str, tuple[ParamSpec, ...]], where: str) -> ModelEntry:
    if not isinstance(obj, dict):
        raise CatalogFormatError(f"{where}: a model must be an object")
    _check_keys(obj, _ENTRY_KEYS, where)
    where = f"{where} ({obj.get('llmid', '?')})"
    try:
        names = obj["names"]
        if isinstance(names, str) or not isinstance(names, list):
            raise CatalogFormatError(f"{where}: names must be a list")
        return ModelEntry(
            llmid=obj["llmid"],
            vendor=obj["vendor"],
            platform=obj["platform"],
            kind=ModelKind(obj["kind"]),
            names=tuple(names),
            display_name=str(obj.get("display_name") or (names[0] if names else "")),
            description=obj.get("description", ""),
            params=_parse_params(obj.get("params"), sets, where),
            price=_parse_price(obj.get("price"), f"{where}.price"),
            max_output_tokens=obj.get("max_output_tokens"),
            context_window=obj.get("context_window"),
            capabilities=tuple(obj.get("capabilities", ())),
        )
    except KeyError as exc:
        raise CatalogFormatError(f"{where}: missing {exc.args[0]!r}") from None
    except ValueError as exc:  # includes a bad `kind`
        if isinstance(exc, CatalogFormatError):
            raise
        raise CatalogFormatError(f"{where}: {exc}") from None


def _parse_alias(name: str, obj: Any, where: str) -> ModelAlias:
    where = f"{where}.{name}"
    if not isinstance(obj, dict):
        raise CatalogFormatError(f"{where}: an alias must be an object")
    _check_keys(obj, frozenset({"model", "kinds", "params", "description"}), where)
    model, kinds, params = obj.get("model"), obj.get("kinds", []), obj.get("params", {})
    if not isinstance(model, str) or not model:
        raise CatalogFormatError(f"{where}: 'model' must be a model name")
    if not isinstance(kinds, list) or not isinstance(params, dict):
        raise CatalogFormatError(f"{where}: 'kinds' must be a list and 'params' an object")
    try:
        parsed_kinds = tuple(ModelKind(k) for k in kinds)
    except ValueError as exc:
        raise CatalogFormatError(f"{where}: {exc}") from None
    return ModelAlias(
        name=name,
        model=model,
        kinds=parsed_kinds,
        params=MappingProxyType({str(k): _frozen(v) for k, v in params.items()}),
        description=str(obj.get("description", "")),
    )


def _parse_aliases(value: Any, where: str) -> list[ModelAlias]:
    if not isinstance(value, dict):
        raise CatalogFormatError(f"{where}: 'aliases' must be an object")
    return [
        _parse_alias(name, obj, f"{where}: aliases")
        for name, obj in value.items()
        if not _is_comment(name)
    ]


def parse_catalog(
    data: Any,
    *,
    source: str = "catalog",
    shared_sets: Mapping[str, tuple[ParamSpec, ...]] | None = None,
) -> Catalog:
    """Build a Catalog from decoded JSON. `shared_sets` lets an override file name shipped sets."""
    if not isinstance(data, dict):
        raise CatalogFormatError(f"{source}: top level must be an object")
    _check_keys(data, frozenset({"version", "currency", "param_sets", "models", "aliases"}), source)
    version = data.get("version", 1)
    if version not in SUPPORTED_VERSIONS:
        raise CatalogFormatError(f"{source}: unsupported catalog version {version!r}")
    sets: dict[str, tuple[ParamSpec, ...]] = dict(shared_sets or {})
    raw_sets = data.get("param_sets", {})
    if not isinstance(raw_sets, dict):
        raise CatalogFormatError(f"{source}: param_sets must be an object")
    for name, specs in raw_sets.items():
        sets[name] = _parse_params(specs, {}, f"{source}: param_sets.{name}")
    models = data.get("models")
    if not isinstance(models, list):
        raise CatalogFormatError(f"{source}: 'models' must be a list")
    entries = [_parse_entry(m, sets, f"{source}: models[{i}]") for i, m in enumerate(models)]
    aliases = _parse_aliases(data.get("aliases", {}), source)
    try:
        return Catalog(entries, aliases)
    except ValueError as exc:
        raise CatalogFormatError(f"{source}: {exc}") from None


def _shipped_data() -> Any:
    text = resources.files(__name__).joinpath(SHIPPED_FILE).read_text(encoding="utf-8")
    return json.loads(text)


@functools.cache
def _shipped_sets() -> Mapping[str, tuple[ParamSpec, ...]]:
    raw = _shipped_data().get("param_sets", {})
    return {
        name: _parse_params(specs, {}, f"{SHIPPED_FILE}: {name}") for name, specs in raw.items()
    }


@functools.cache
def load_catalog() -> Catalog:
    """The catalog shipped with the package (parsed once per process)."""
    return parse_catalog(_shipped_data(), source=SHIPPED_FILE)


def load_catalog_file(path: str | Path) -> Catalog:
    """An admin-supplied catalog file; it may refer to the shipped param sets by name.

    The result holds only that file's entries; combine with `llmage.domain.catalog.overlay(
    load_catalog(), ...)` to override or extend the shipped catalog rather than replace it.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CatalogFormatError(f"{path}: invalid JSON: {exc}") from None
    return parse_catalog(data, source=str(path), shared_sets=_shipped_sets())
