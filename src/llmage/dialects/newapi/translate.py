"""new-api style submit (seeds 002 and 004) → the canonical TaskDraft. Pure: no IO.

Fields
  model                 a catalog model name, an llmid, or an alias (seed 002's reseller names:
                        `viduq3p-720p-offpeak` = viduq3-pro, 720p, off-peak); `metadata.req_key`
                        (seed 004, Jimeng) replaces it when it names a video model
  prompt                prompt
  image                 first frame (`image1_file`, or the model's one image slot); a list of two
                        is first + last frame
  last_image            last frame (`image2_file`); `metadata.image_tail` (Kling) is the same
  reference_image_urls  reference images (`image_files`); `metadata.image_urls` too when the model
                        runs reference-to-video, otherwise it lists the frames (Jimeng)
  aspect_ratio          ratio
  size, width + height  the model's `size` when it has one, else `ratio` and `resolution`
                        derived from them, only where the request does not set those itself
  duration, seed, fps   by name (duration as a number or a string)
  n                     must be 1 unless the model takes `n`
  metadata, extra_body  merged; keys the model declares are validated like top-level fields,
                        the others pass through to the provider (TaskDraft.extra)
  callback_url          top level or metadata: TaskDraft.callback_url (a signed webhook)
  user, response_format accepted and ignored
A field given in two places (top level, metadata, extra_body) must have the same value.

Mode (seed 002): reference images → reference-to-video (models with such a mode, e.g. the `-mix`
aliases); image → image-to-video, with last_image first-and-last-frame; last_image alone → 400;
otherwise text-to-video. An alias's fixed parameters may be repeated but not contradicted (400).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from llmage.dialects.newapi.fields import (
    Inputs,
    Sourced,
    agree,
    fill_from_dims,
    media_list,
    one_media,
    place,
    present,
    requested_dims,
)
from llmage.dialects.submission import CALLBACK_URL
from llmage.domain.catalog import Catalog, ModelAlias, ModelEntry, ModelKind, apply_alias
from llmage.domain.errors import InvalidParameter, InvalidRequest, MissingParameter, UnknownModel
from llmage.domain.params import ParamSpec, check_value, read_fields
from llmage.domain.tasks import TaskDraft

# Top-level fields handled by name below, never copied as parameters.
_TOP_CONTROL = frozenset(
    {"model", "image", "last_image", "reference_image_urls", "size", "width", "height", "n"}
    | {"metadata", "extra_body", "callback_url", "user", "response_format"}
)
# Top-level fields of seed 004 passed to the provider even when the model does not declare them
# (then typed as seed 004 documents them; a model's own spec rules where it has one).
_TOP_PASS = {
    "seed": ParamSpec("seed", "integer"),
    "fps": ParamSpec("fps", "integer", minimum=1),
    "duration": ParamSpec("duration", "number", minimum=0),
}
# Accepted and ignored, but still only in their documented shape.
_TOP_IGNORED = (ParamSpec("user", "string"), ParamSpec("response_format", "string"))
_REQ_KEY = ParamSpec("req_key", "string")
# Vendor keys (metadata / extra_body) with a meaning of their own.
_VENDOR_CONTROL = frozenset(
    {"req_key", "image", "last_image", "image_tail", "image_urls", "reference_image_urls"}
    | {"callback_url", "size", "width", "height", "n"}
)
_VENDOR_REFUSED = frozenset({"model", "llmid"})
_RENAMES = {"aspect_ratio": "ratio"}
_VENDOR_SOURCES = ("metadata", "extra_body")


@dataclass(frozen=True, slots=True)
class NewApiSubmit:
    draft: TaskDraft
    requested: str  # the model as the client named it, echoed in the reply
    entry: ModelEntry


def video_names(catalog: Catalog) -> list[str]:
    names = {n for e in catalog.entries() if e.kind.is_video for n in e.names}
    return sorted(names | {a.name for a in catalog.aliases()})


def _vendor(body: Mapping[str, Any]) -> dict[str, list[Sourced]]:
    """metadata and extra_body, key → [(label, value)] in that order."""
    out: dict[str, list[Sourced]] = {}
    for source in _VENDOR_SOURCES:
        obj = body.get(source)
        if obj is None or obj == "":
            continue
        if not isinstance(obj, dict):
            raise InvalidParameter(f"'{source}' must be a JSON object", param=source)
        for key, value in obj.items():
            if key in _VENDOR_REFUSED:
                raise InvalidParameter(
                    f"'{source}.{key}' is not accepted; set the top-level 'model'",
                    param=f"{source}.{key}",
                )
            out.setdefault(str(key), []).append((f"{source}.{key}", value))
    return out


def _checked(spec: ParamSpec, value: Any, label: str) -> object:
    """`value` by `spec`'s rules, errors naming the field where the client put it."""
    try:
        return check_value(spec, value, label)
    except InvalidParameter as exc:
        exc.param = label
        raise


def _both(body: Mapping[str, Any], vendor: Mapping[str, list[Sourced]], key: str) -> list[Sourced]:
    return [(key, body.get(key)), *vendor.get(key, [])]


def _model(
    body: Mapping[str, Any], vendor: dict[str, list[Sourced]], catalog: Catalog
) -> tuple[str, str, ModelAlias | None, ModelEntry | None]:
    """(as requested, base model name, alias, entry when the model is an llmid)."""
    requested = body.get("model")
    if requested is None or (isinstance(requested, str) and not requested.strip()):
        raise MissingParameter("model")
    if not isinstance(requested, str):
        raise InvalidParameter("'model' must be a string", param="model")
    requested = requested.strip()
    name = requested
    req_key = agree(vendor.pop("req_key", []))
    if req_key is not None:
        key = str(_checked(_REQ_KEY, req_key[1], req_key[0])).strip()
        if not any(e.kind.is_video for e in catalog.by_name(key)):
            raise InvalidParameter(
                f"'{req_key[0]}' = {key!r} is not a video model", param=req_key[0]
            )
        name = key
    by_id = catalog.by_llmid(name)
    if by_id is not None and by_id.kind.is_video:
        return requested, by_id.default_name, None, by_id
    alias = catalog.alias(name)
    base = alias.model if alias is not None else name
    if not any(e.kind.is_video for e in catalog.by_name(base)):
        raise UnknownModel(requested, video_names(catalog))
    return requested, base, alias, None


def _inputs(
    body: Mapping[str, Any], vendor: dict[str, list[Sourced]], reference_mode: bool
) -> Inputs:
    found = Inputs()
    images = media_list(_both(body, vendor, "image"))
    if images is not None:
        label, frames = images
        if len(frames) > 2:
            raise InvalidParameter(
                f"'{label}' takes one image, or two (first and last frame)", param=label
            )
        found.first = frames[0]
        if len(frames) == 2:
            found.last = frames[1]
    lasts = [*_both(body, vendor, "last_image"), *vendor.get("image_tail", [])]
    if found.last is not None:
        lasts.insert(0, (images[0] if images else "image", found.last))
    last = one_media(lasts)
    if last is not None:
        found.last_label, found.last = last
    refs = media_list(_both(body, vendor, "reference_image_urls"))
    urls = media_list(vendor.get("image_urls", []))
    if urls is not None and (reference_mode or refs is not None):
        refs = media_list([*([refs] if refs else []), urls])
    elif urls is not None:
        # Jimeng's image_urls: the frames, the same images as `image` / `last_image` if given.
        label, frames = urls
        if len(frames) > 2:
            raise InvalidParameter(f"'{label}' takes at most 2 images here", param=label)
        pairs = zip((found.first, found.last), frames, strict=False)
        for i, (mine, theirs) in enumerate(pairs):
            if mine is not None and mine != theirs:
                raise InvalidParameter(f"'{label}[{i}]' and the image given differ", param=label)
        found.first = found.first or frames[0]
        if len(frames) == 2:
            found.last = found.last or frames[1]
    if refs is not None:
        found.refs = refs[1]
    return found


def _mode(inputs: Inputs) -> ModelKind:
    if inputs.refs:
        if inputs.first is not None or inputs.last is not None:
            raise InvalidParameter(
                "reference_image_urls cannot be combined with image or last_image",
                param="reference_image_urls",
            )
        return ModelKind.R2V
    if inputs.last is not None and inputs.first is None:
        raise InvalidParameter(
            f"'{inputs.last_label}' needs 'image' (the first frame): first-and-last-frame "
            "generation takes both, and a last frame alone is not supported",
            param=inputs.last_label,
        )
    return ModelKind.I2V if inputs.first is not None else ModelKind.T2V


def _no_mode(requested: str, kinds: set[ModelKind], kind: ModelKind, catalog: Catalog) -> NoReturn:
    """Raise the 400 for a model that cannot run in `kind`."""
    if kind is ModelKind.T2V:
        if ModelKind.I2V in kinds:
            raise MissingParameter("image")
        raise MissingParameter("reference_image_urls")
    if kind is ModelKind.I2V:
        raise InvalidParameter(
            f"Model '{requested}' has no image-to-video mode; it does not take 'image'",
            param="image",
        )
    mix = sorted(a.name for a in catalog.aliases() if a.kinds == (ModelKind.R2V,))
    raise InvalidParameter(
        f"Model '{requested}' does not take reference images; reference_image_urls works "
        "with reference (mix) models only",
        param="reference_image_urls",
        allowed=mix,
    )


def _entry(
    requested: str,
    base: str,
    alias: ModelAlias | None,
    fixed: ModelEntry | None,
    inputs: Inputs,
    catalog: Catalog,
) -> tuple[ModelEntry, dict[str, Any]]:
    kind = _mode(inputs)
    if fixed is not None:
        if fixed.kind is not kind:
            _no_mode(requested, {fixed.kind}, kind, catalog)
        return fixed, _place(requested, fixed, inputs)
    video = [e for e in catalog.by_name(base) if e.kind.is_video]
    if alias is not None:
        video = [e for e in video if alias.allows(e.kind)]
    candidates = [e for e in video if e.kind is kind]
    if not candidates:
        _no_mode(requested, {e.kind for e in video}, kind, catalog)
    for entry in candidates:
        files = place(entry, inputs, strict=True)
        if files is not None:
            return entry, files
    return candidates[0], _place(requested, candidates[0], inputs)


def _place(requested: str, entry: ModelEntry, inputs: Inputs) -> dict[str, Any]:
    """The inputs in `entry`'s slots (a missing required one is the normaliser's 400)."""
    files = place(entry, inputs, strict=False)
    if files is not None:
        return files
    if inputs.last is not None and entry.param("image2_file") is None:
        raise InvalidParameter(
            f"Model '{requested}' does not take a last frame", param=inputs.last_label
        )
    if inputs.refs:
        raise InvalidParameter(
            f"Model '{requested}' does not take reference images", param="reference_image_urls"
        )
    raise InvalidParameter(f"Model '{requested}' does not take an image", param="image")


def _reference_mode(
    base: str, alias: ModelAlias | None, fixed: ModelEntry | None, catalog: Catalog
) -> bool:
    """Whether `metadata.image_urls` are reference images (rather than frames) for this model."""
    if fixed is not None:
        return fixed.kind is ModelKind.R2V
    if alias is not None and alias.kinds:
        return alias.kinds == (ModelKind.R2V,)
    kinds = {e.kind for e in catalog.by_name(base)}
    return ModelKind.R2V in kinds and ModelKind.I2V not in kinds


def _params(
    body: Mapping[str, Any], vendor: Mapping[str, list[Sourced]], entry: ModelEntry
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model parameters, vendor extras) from the top level, metadata and extra_body."""
    known: dict[str, list[Sourced]] = {}
    extra: dict[str, list[Sourced]] = {}
    found = [(k, [(k, v)], k in _TOP_PASS) for k, v in body.items() if k not in _TOP_CONTROL]
    found += [(k, v, True) for k, v in vendor.items() if k not in _VENDOR_CONTROL]
    for key, values, passes in found:
        spec = entry.param(_RENAMES.get(key, key))
        if spec is None:
            spec = next((s for s in entry.params if key in s.aliases), None)
        if spec is not None and not spec.is_file:
            known.setdefault(spec.name, []).extend(values)
        elif spec is None and passes:
            top = _TOP_PASS.get(key)
            for label, value in values:
                if top is not None and label == key and present(value):
                    _checked(top, value, label)  # the value itself passes on as sent
            extra.setdefault(key, []).extend(values)
        # else: an undeclared top-level field or a file slot by name: ignored, as new-api does
    raw: dict[str, Any] = {}
    for name, values in known.items():
        picked = agree(values, entry.param(name))
        if picked is not None:
            raw[name] = picked[1]
    extras: dict[str, Any] = {}
    for key, values in extra.items():
        picked = agree(values)
        if picked is not None:
            extras[key] = picked[1]
    return raw, extras


def _count(requested: str, entry: ModelEntry, found: Sourced | None, raw: dict[str, Any]) -> None:
    if found is None:
        return
    label, value = found
    if entry.param("n") is not None:
        raw["n"] = value
        return
    if str(value).strip() not in ("1", "1.0") or isinstance(value, bool):
        raise InvalidParameter(
            f"Model '{requested}' makes one video per request; '{label}' must be 1",
            param=label,
            allowed=(1,),
        )


def _callback(found: Sourced | None) -> str | None:
    if found is None:
        return None
    label, value = found
    return str(_checked(CALLBACK_URL, value.strip() if isinstance(value, str) else value, label))


def translate_submit(body: Mapping[str, Any], catalog: Catalog) -> NewApiSubmit:
    if not isinstance(body, Mapping):
        raise InvalidRequest("Request body must be a JSON object")
    read_fields(_TOP_IGNORED, body)
    vendor = _vendor(body)
    requested, base, alias, fixed = _model(body, vendor, catalog)
    inputs = _inputs(body, vendor, _reference_mode(base, alias, fixed, catalog))
    if alias is not None and inputs.refs and not alias.allows(ModelKind.R2V):
        _no_mode(requested, set(), ModelKind.R2V, catalog)
    if alias is not None and alias.kinds == (ModelKind.R2V,) and not inputs.refs:
        if inputs.first is not None or inputs.last is not None:
            raise InvalidParameter(
                f"Model '{requested}' generates from reference images: send "
                "reference_image_urls instead of image / last_image",
                param="image" if inputs.first is not None else inputs.last_label,
            )
        raise MissingParameter("reference_image_urls")
    entry, files = _entry(requested, base, alias, fixed, inputs, catalog)
    raw, extra = _params(body, vendor, entry)
    keep = alias.params if alias is not None else {}
    dims = requested_dims(
        agree(_both(body, vendor, "size")),
        agree(_both(body, vendor, "width")),
        agree(_both(body, vendor, "height")),
    )
    if dims is not None and not fill_from_dims(requested, entry, dims, raw, keep):
        extra.setdefault("size", f"{dims[0]}x{dims[1]}")
    _count(requested, entry, agree(_both(body, vendor, "n")), raw)
    if alias is not None:
        raw = apply_alias(alias, entry, raw)
    raw.update(files)
    model = base if fixed is None else fixed.default_name
    draft = TaskDraft(
        kind="video",
        raw=raw,
        model=model,
        llmid=entry.llmid,
        callback_url=_callback(agree(_both(body, vendor, "callback_url"))),
        extra={k: v for k, v in extra.items() if present(v)},
    )
    return NewApiSubmit(draft, requested, entry)
