"""The model catalog: what can be called, under which ids and names, with what parameters and price.

Pure types and lookups; the shipped data lives in `llmage.catalog` (JSON) and is parsed there.
Video models are addressed by `llmid` (seed 000's native API) and may offer several concrete model
names; chat models are addressed by name (OpenAI dialect) or by llmid. Aliases (seed 002's reseller
names such as `viduq3p-720p-offpeak`) stand for a base model name run in given kinds with some
parameters fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from llmage.domain.errors import UnknownModel
from llmage.domain.params import (
    InvalidParameterError,
    ParamSpec,
    json_schema,
    normalize_params,
)


class ModelKind(StrEnum):
    CHAT = "chat"
    T2V = "t2v"  # text to video
    I2V = "i2v"  # image(s) to video: first frame, or first + last frame
    R2V = "r2v"  # reference images/videos/audio to video
    T2I = "t2i"
    I2I = "i2i"

    @property
    def is_video(self) -> bool:
        return self in (ModelKind.T2V, ModelKind.I2V, ModelKind.R2V)

    @property
    def is_image(self) -> bool:
        return self in (ModelKind.T2I, ModelKind.I2I)


PRICE_UNITS = ("second", "image", "request")
SETTLE_UNITS = ("mtoken", "credit")  # reported by the upstream: usage `tokens`, `credits`


class UnknownModelError(UnknownModel):
    def __init__(self, model: str, allowed: Sequence[str] = ()) -> None:
        super().__init__(model, allowed or None)
        self.model = model


@dataclass(frozen=True, slots=True)
class ChatPrice:
    """Micro-units (1 CNY = 1_000_000) per million tokens."""

    input_per_mtok: int
    output_per_mtok: int
    cached_input_per_mtok: int | None = None


@dataclass(frozen=True, slots=True)
class MediaPrice:
    """Micro-units per unit, picked by the value of parameter `by`.

    `multipliers` scale the base price by other parameters' values, e.g. Vidu's off-peak half
    price `{"off_peak": {"Y": 0.5}}` or a cheaper model variant `{"model": {"...-fast": 0.8}}`
    (the concrete model name is read from the request's `model` key when the caller sets it).
    """

    unit: str
    by: str | None
    rates: Mapping[str, int]
    multipliers: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Providers that bill on something else than the request (Ark tokens, Vidu credits): the
    # hold is still quoted from `rates` (the worst case), the charge from what the upstream
    # reports, at `settle_rates` per `settle_unit` ("mtoken" = a million tokens, "credit"),
    # picked by the same `by` value; never above the hold.
    settle_unit: str | None = None
    settle_rates: Mapping[str, int] = field(default_factory=dict)
    # The multipliers of the settled charge; None: the same as `multipliers`. Credits (Vidu)
    # already count what the upstream discounts (off-peak, a cheaper model), so their entries
    # set `{}` here: scaling the credits again would discount twice.
    settle_multipliers: Mapping[str, Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        if self.unit not in PRICE_UNITS:
            raise ValueError(f"price unit must be one of {PRICE_UNITS}, not {self.unit!r}")
        if not self.rates:
            raise ValueError("a media price needs at least one rate")
        if self.by is None and "*" not in self.rates:
            raise ValueError("a media price without `by` needs a '*' rate")
        for key, rate in self.rates.items():
            if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
                raise ValueError(f"rate {key!r} must be a non-negative integer of micro-units")
        for param, table in {**self.multipliers, **(self.settle_multipliers or {})}.items():
            for value, factor in table.items():
                if not isinstance(factor, int | float) or factor < 0:
                    raise ValueError(f"multiplier {param}={value} must be a non-negative number")
        if self.settle_unit is not None:
            if self.settle_unit not in SETTLE_UNITS:
                raise ValueError(f"settle unit must be one of {SETTLE_UNITS}")
            if not self.settle_rates or (self.by is None and "*" not in self.settle_rates):
                raise ValueError("a settle unit needs settle rates ('*' when there is no `by`)")
            for key, rate in self.settle_rates.items():
                if not isinstance(rate, int) or isinstance(rate, bool) or rate < 0:
                    raise ValueError(f"settle rate {key!r} must be non-negative micro-units")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    llmid: str
    vendor: str
    platform: str
    kind: ModelKind
    names: tuple[str, ...]
    display_name: str
    description: str
    params: tuple[ParamSpec, ...]
    price: ChatPrice | MediaPrice
    max_output_tokens: int | None = None
    context_window: int | None = None
    # Free-form feature tags for the model plaza and routing, e.g. "vision", "reasoning".
    capabilities: tuple[str, ...] = ()

    @property
    def default_name(self) -> str:
        return self.names[0]

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


def validate_entry(entry: ModelEntry) -> None:
    """Reject entries that would fail later at request time (admins edit the catalog by hand)."""
    where = f"model {entry.llmid!r}"
    if not entry.llmid:
        raise ValueError("a model needs an llmid")
    if not entry.names or any(not n for n in entry.names):
        raise ValueError(f"{where}: needs at least one non-empty model name")
    if len(set(entry.names)) != len(entry.names):
        raise ValueError(f"{where}: duplicate model names")
    seen: set[str] = set()
    for spec in entry.params:
        for key in spec.names:
            if key in seen:
                raise ValueError(f"{where}: parameter name or alias {key!r} used twice")
            seen.add(key)
    if entry.kind is ModelKind.CHAT:
        if not isinstance(entry.price, ChatPrice):
            raise ValueError(f"{where}: a chat model needs a per-token price")
        return
    if not isinstance(entry.price, MediaPrice):
        raise ValueError(f"{where}: a {entry.kind} model needs a media price")
    by = entry.price.by
    if by is not None and by != "model" and entry.param(by) is None:
        raise ValueError(f"{where}: price depends on unknown parameter {by!r}")
    if entry.price.unit == "second" and entry.param("duration") is None:
        raise ValueError(f"{where}: a per-second price needs a 'duration' parameter")


@dataclass(frozen=True, slots=True)
class ModelAlias:
    """Another name for `model` that runs only as one of `kinds` (all when empty) and fixes
    `params`, e.g. `viduq3p-720p-offpeak` = viduq3-pro, t2v or i2v, 720p, off-peak."""

    name: str
    model: str
    kinds: tuple[ModelKind, ...] = ()
    params: Mapping[str, object] = field(default_factory=dict)
    description: str = ""

    def allows(self, kind: ModelKind) -> bool:
        return not self.kinds or kind in self.kinds


def canonical_value(spec: ParamSpec, value: object) -> object:
    """`value` as the request normaliser would store it (raises InvalidParameterError), to
    compare two spellings of one setting: `"5"` and `5`, `720P` and `720p`, `true` and `Y`."""
    loose = ParamSpec(
        spec.name, spec.type, enum=spec.enum, minimum=spec.minimum, maximum=spec.maximum,
        case_insensitive=spec.case_insensitive,
    )  # fmt: skip
    return normalize_params((loose,), {spec.name: value}).get(spec.name)


def apply_alias(
    alias: ModelAlias, entry: ModelEntry, raw: Mapping[str, object]
) -> dict[str, object]:
    """`raw` with the alias's fixed parameters set under their canonical names.

    A request that already gives one of them (under any of its spellings) must give the same
    value: `viduq3p-720p` with `resolution: 1080p` is a contradiction, refused with a 400 that
    names the parameter, rather than silently charged at either price.
    """
    out = dict(raw)
    for name, fixed in alias.params.items():
        spec = entry.param(name)
        if spec is None:  # validated at load time; a hand-built Catalog may still get here
            raise ValueError(f"alias {alias.name!r} fixes {name!r}, unknown to {entry.llmid}")
        want = canonical_value(spec, fixed)
        for key in spec.names:
            sent = out.pop(key, None)
            if sent is None or sent == "":
                continue
            if canonical_value(spec, sent) != want:
                raise InvalidParameterError(
                    name,
                    f"Model '{alias.name}' fixes {name} = {want}; the request asks for {sent}. "
                    f"Drop '{key}' or pick the model name for that setting",
                    (want,),
                )
        out[spec.name] = want
    return out


def validate_alias(alias: ModelAlias, entries: Sequence[ModelEntry]) -> None:
    """`entries` are those named `alias.model`; every one the alias can reach must take (and
    allow) each fixed parameter, or requests through the alias would fail later."""
    where = f"alias {alias.name!r}"
    if not alias.name or not alias.model:
        raise ValueError(f"{where}: needs a name and a target model")
    reach = [e for e in entries if e.kind is not ModelKind.CHAT and alias.allows(e.kind)]
    if not reach:
        raise ValueError(f"{where}: no media model {alias.model!r} of kind(s) {alias.kinds}")
    missing = [k for k in alias.kinds if not any(e.kind is k for e in reach)]
    if missing:
        raise ValueError(f"{where}: model {alias.model!r} has no {', '.join(missing)} entry")
    for entry in reach:
        for name, value in alias.params.items():
            spec = entry.param(name)
            if spec is None or spec.is_file:
                raise ValueError(f"{where}: {entry.llmid} has no parameter {name!r}")
            try:
                canonical_value(spec, value)
            except InvalidParameterError as exc:
                raise ValueError(f"{where}: {exc.message}") from None


class Catalog:
    """Every lookup answers for the enabled models only; `disabled` llmids (switched off by an
    admin) stay known to `any_by_llmid` and `all_entries`, so tasks already running on them
    still settle at their price."""

    def __init__(
        self,
        entries: Iterable[ModelEntry],
        aliases: Iterable[ModelAlias] = (),
        disabled: Iterable[str] = (),
    ) -> None:
        self._all: tuple[ModelEntry, ...] = tuple(entries)
        self._disabled: frozenset[str] = frozenset(disabled)
        self._any_by_llmid: dict[str, ModelEntry] = {}
        all_names: dict[str, list[ModelEntry]] = {}
        chat_names: set[str] = set()
        for entry in self._all:
            validate_entry(entry)
            if entry.llmid in self._any_by_llmid:
                raise ValueError(f"duplicate llmid {entry.llmid!r}")
            self._any_by_llmid[entry.llmid] = entry
            for name in entry.names:
                all_names.setdefault(name, []).append(entry)
                if entry.kind is ModelKind.CHAT:
                    # OpenAI clients address chat models by name alone, so it must be unambiguous.
                    if name in chat_names:
                        raise ValueError(f"chat model name {name!r} listed by two entries")
                    chat_names.add(name)
        self._entries = tuple(e for e in self._all if e.llmid not in self._disabled)
        self._by_llmid: dict[str, ModelEntry] = {e.llmid: e for e in self._entries}
        self._by_name: dict[str, list[ModelEntry]] = {}
        self._chat_by_name: dict[str, ModelEntry] = {}
        for entry in self._entries:
            for name in entry.names:
                self._by_name.setdefault(name, []).append(entry)
                if entry.kind is ModelKind.CHAT:
                    self._chat_by_name[name] = entry
        self._aliases: dict[str, ModelAlias] = {}
        for alias in aliases:
            if alias.name in all_names or alias.name in self._any_by_llmid:
                raise ValueError(f"alias {alias.name!r} hides a model name or llmid")
            if alias.name in self._aliases:
                raise ValueError(f"duplicate alias {alias.name!r}")
            validate_alias(alias, all_names.get(alias.model, ()))
            self._aliases[alias.name] = alias

    def __len__(self) -> int:
        return len(self._entries)

    def adopt(self, other: Catalog) -> None:
        """Take `other`'s models and prices in place: every service holding this catalog
        prices the next request with them (a price change announced to every instance)."""
        self._all = other._all
        self._disabled = other._disabled
        self._any_by_llmid = other._any_by_llmid
        self._entries = other._entries
        self._by_llmid = other._by_llmid
        self._by_name = other._by_name
        self._chat_by_name = other._chat_by_name
        self._aliases = other._aliases

    def entries(self) -> Sequence[ModelEntry]:
        return self._entries

    def all_entries(self) -> Sequence[ModelEntry]:
        """Enabled and disabled alike (the admin's list)."""
        return self._all

    def disabled(self) -> frozenset[str]:
        return self._disabled

    def any_by_llmid(self, llmid: str) -> ModelEntry | None:
        """Also a disabled model: for settling and showing work already accepted on it."""
        return self._any_by_llmid.get(llmid)

    def of_kind(self, *kinds: ModelKind) -> list[ModelEntry]:
        return [e for e in self._entries if e.kind in kinds]

    def by_llmid(self, llmid: str) -> ModelEntry | None:
        return self._by_llmid.get(llmid)

    def by_name(self, name: str) -> list[ModelEntry]:
        return list(self._by_name.get(name, ()))

    def alias(self, name: str) -> ModelAlias | None:
        return self._aliases.get(name)

    def aliases(self) -> Sequence[ModelAlias]:
        return tuple(self._aliases.values())

    def alias_for(self, entry: ModelEntry, model: str, params: Mapping[str, object]) -> str | None:
        """The alias that describes a run of `entry` as `model` with these normalised params
        (the one fixing the most of them), for dialects that answer with the reseller name."""
        best: tuple[int, str] | None = None
        for alias in self._aliases.values():
            if alias.model != model or not alias.allows(entry.kind):
                continue
            fits = all(params.get(k) == v for k, v in alias.params.items())
            if fits and (best is None or len(alias.params) > best[0]):
                best = (len(alias.params), alias.name)
        return best[1] if best else None

    def chat_model(self, name_or_llmid: str) -> tuple[ModelEntry, str] | None:
        entry = self._chat_by_name.get(name_or_llmid)
        if entry is not None:
            return entry, name_or_llmid
        entry = self._by_llmid.get(name_or_llmid)
        if entry is not None and entry.kind is ModelKind.CHAT:
            return entry, entry.default_name
        return None

    def chat_names(self) -> list[str]:
        return list(self._chat_by_name)

    def resolve_native(self, llmid: str, model: str | None) -> tuple[ModelEntry, str]:
        """The entry for `llmid` and the concrete model name (default when `model` is empty)."""
        entry = self._by_llmid.get(llmid)
        if entry is None:
            raise UnknownModelError(llmid)
        if model is None or not model.strip():
            return entry, entry.default_name
        model = model.strip()
        if model not in entry.names:
            raise InvalidParameterError(
                "model",
                f"Invalid value for parameter 'model': {model}. "
                f"Allowed values for llmid {llmid}: {', '.join(entry.names)}",
                entry.names,
            )
        return entry, model


def overlay(base: Catalog, override: Catalog) -> Catalog:
    """`base` with entries replaced (same llmid) or added by `override`, keeping base order;
    aliases of both, `override` winning on a name."""
    replaced = {e.llmid: e for e in override.entries()}
    merged = [replaced.pop(e.llmid, e) for e in base.entries()]
    merged.extend(e for e in override.entries() if e.llmid in replaced)
    aliases = {a.name: a for a in base.aliases()} | {a.name: a for a in override.aliases()}
    return Catalog(merged, aliases.values())


def model_json_schema(entry: ModelEntry) -> dict[str, object]:
    """The request schema of one native-API model, with its `llmid` and `model` fields."""
    schema = json_schema(entry.params)
    props = schema["properties"]
    assert isinstance(props, dict)
    head: dict[str, object] = {
        "llmid": {"type": "string", "const": entry.llmid, "description": "模型编号"},
        "model": {
            "type": "string",
            "enum": list(entry.names),
            "default": entry.default_name,
            "description": "模型名",
        },
    }
    schema["properties"] = {**head, **props}
    required = schema["required"]
    assert isinstance(required, list)
    schema["required"] = ["llmid", *required]
    schema["title"] = entry.display_name
    if entry.description:
        schema["description"] = entry.description
    return schema
