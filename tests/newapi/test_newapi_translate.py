"""translate_submit (pure): new-api bodies → TaskDraft, on the shipped catalog. No server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from newapi_seeds import (
    EXAMPLES,
    JIMENG_T2V,
    KLING_V1_T2V,
    VIDU_Q1_T2V,
    VIDU_Q3_I2V,
    VIDU_Q3_PRO_FIRST_LAST,
    VIDU_Q3_PRO_T2V,
    VIDU_Q3_R2V,
    VIDU_Q3_TURBO_T2V,
    SeedExample,
)

from llmage.catalog import load_catalog
from llmage.dialects.newapi.errors import in_client_terms
from llmage.dialects.newapi.translate import NewApiSubmit, translate_submit, video_names
from llmage.domain.catalog import Catalog
from llmage.domain.errors import InvalidParameter, LlmageError, MissingParameter, UnknownModel
from llmage.domain.media_pricing import quote_media
from llmage.domain.params import normalize_params
from llmage.domain.tasks import MediaSource

CATALOG: Catalog = load_catalog()
A, B, C = "https://img.test/a.png", "https://img.test/b.png", "https://img.test/c.png"


def tr(body: dict[str, Any]) -> NewApiSubmit:
    return translate_submit(body, CATALOG)


def urls(value: Any) -> Any:
    """MediaSources (and lists of them) as their URLs, for comparisons."""
    if isinstance(value, MediaSource):
        return value.url
    if isinstance(value, list):
        return [urls(v) for v in value]
    return value


def raw(submit: NewApiSubmit) -> dict[str, Any]:
    return {k: urls(v) for k, v in submit.draft.raw.items()}


def refused(body: dict[str, Any], param: str) -> LlmageError:
    with pytest.raises(LlmageError) as info:
        tr(body)
    assert in_client_terms(info.value).param == param, info.value.message
    return info.value


# -- the seed examples, field by field ----------------------------------------------------------

EXPECTED: dict[str, tuple[dict[str, Any], dict[str, Any], str | None]] = {
    "002-t2v": (
        {"prompt": ..., "ratio": "16:9", "duration": 5, "resolution": "720p", "off_peak": "N"},
        {"audio": False, "seed": 42, "bgm": False},
        None,
    ),
    "002-i2v": (
        {"prompt": ..., "duration": 5, "resolution": "540p", "off_peak": "N",
         "image1_file": "https://example.com/source.png"},
        {"seed": 42},
        None,
    ),
    "002-first-last": (
        {"prompt": ..., "duration": 6, "resolution": "1080p", "off_peak": "Y",
         "image1_file": "https://example.com/head.png",
         "image2_file": "https://example.com/tail.png"},
        {},
        None,
    ),
    "002-mix": (
        {"prompt": ..., "ratio": "16:9", "duration": 5, "resolution": "720p", "off_peak": "N",
         "image_files": ["https://example.com/ref-1.png", "https://example.com/ref-2.png"]},
        {"audio": False, "seed": 42},
        None,
    ),
    "004-kling": (
        {"prompt": ..., "duration": 5, "ratio": "16:9", "negative_prompt": "模糊",
         "image1_file": ..., "image2_file": ...},
        {"seed": 20231234},
        None,
    ),
    "004-jimeng": ({"prompt": ..., "ratio": "16:9", "image1_file": ...}, {}, None),
    "004-vidu": (
        {"prompt": ..., "duration": 5, "seed": 0, "resolution": "1080p",
         "movement_amplitude": "auto", "bgm": False, "image1_file": ...},
        {},
        "https://your-callback-url.com/webhook",
    ),
}  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.name)
def test_seed_example(example: SeedExample) -> None:
    body = json.loads(example.body)
    submit = tr(body)
    draft = submit.draft
    assert submit.requested == body["model"]
    assert (draft.llmid, draft.model, draft.kind) == (example.llmid, example.model, "video")
    want_raw, want_extra, callback = EXPECTED[example.name]
    got = raw(submit)
    assert set(got) == set(want_raw)
    for key, value in want_raw.items():
        if value is not ...:
            assert got[key] == value, key
    assert got["prompt"] == body["prompt"]
    assert draft.extra == want_extra
    assert draft.callback_url == callback
    # What the service will quote: the documented price.
    params = normalize_params(submit.entry.params, draft.raw)
    assert quote_media(submit.entry, {**params, "model": draft.model}) == example.price


def test_kling_example_frames_come_from_image_and_image_tail() -> None:
    got = raw(tr(json.loads(EXAMPLES[4].body)))
    assert got["image1_file"].endswith("_raw_image_0.jpg")
    assert got["image2_file"].endswith("1fa0ac67d8ce6cd55b50d68b967b3a59.png")


# -- model names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "body", "llmid", "base", "fixed"),
    [
        ("viduq3p-540p", {}, VIDU_Q3_PRO_T2V, "viduq3-pro", ("540p", "N")),
        ("viduq3p-1080p-offpeak", {}, VIDU_Q3_PRO_T2V, "viduq3-pro", ("1080p", "Y")),
        ("viduq3t-720p", {}, VIDU_Q3_TURBO_T2V, "viduq3-turbo", ("720p", "N")),
        ("viduq3t-540p-offpeak", {"image": A}, VIDU_Q3_I2V, "viduq3-turbo", ("540p", "Y")),
        ("viduq3p-720p", {"image": A}, VIDU_Q3_I2V, "viduq3-pro", ("720p", "N")),
        ("viduq3p-720p", {"image": A, "last_image": B}, VIDU_Q3_PRO_FIRST_LAST, "viduq3-pro",
         ("720p", "N")),
        ("viduq3t-1080p", {"image": A, "last_image": B}, VIDU_Q3_I2V, "viduq3-turbo",
         ("1080p", "N")),
        ("viduq3t-mix-540p-offpeak", {"reference_image_urls": [A]}, VIDU_Q3_R2V, "viduq3-turbo",
         ("540p", "Y")),
    ],
)  # fmt: skip
def test_aliases_fix_model_mode_resolution_and_off_peak(
    model: str, body: dict[str, Any], llmid: str, base: str, fixed: tuple[str, str]
) -> None:
    submit = tr({"model": model, "prompt": "p", **body})
    assert (submit.draft.llmid, submit.draft.model) == (llmid, base)
    assert (submit.draft.raw["resolution"], submit.draft.raw["off_peak"]) == fixed


def test_alias_accepts_the_same_value_in_any_spelling() -> None:
    body = {"model": "viduq3p-720p-offpeak", "prompt": "p", "metadata": {"resolution": "720P"},
            "extra_body": {"off_peak": True}}  # fmt: skip
    assert raw(tr(body))["resolution"] == "720p"
    assert raw(tr(body))["off_peak"] == "Y"


def test_plain_names_llmids_and_defaults() -> None:
    t2v = tr({"model": "kling-v1", "prompt": "p"})
    assert t2v.draft.llmid == KLING_V1_T2V and raw(t2v) == {"prompt": "p"}
    by_id = tr({"model": VIDU_Q1_T2V, "prompt": "p"})
    assert (by_id.draft.llmid, by_id.draft.model, by_id.requested) == (
        VIDU_Q1_T2V, "viduq1", VIDU_Q1_T2V,
    )  # fmt: skip
    assert tr({"model": "jimeng_vgfm_t2v_l20", "prompt": "p"}).draft.llmid == JIMENG_T2V
    # Plain base names work too, with the catalog's defaults filled later by the service.
    assert tr({"model": "viduq3-turbo", "prompt": "p"}).draft.llmid == VIDU_Q3_TURBO_T2V


def test_unknown_model_lists_video_names_and_aliases() -> None:
    with pytest.raises(UnknownModel) as info:
        tr({"model": "nope", "prompt": "p"})
    allowed = info.value.allowed or ()
    assert "viduq3p-mix-720p" in allowed and "kling-v1" in allowed and "viduq1" in allowed
    assert "qwen3-max" not in allowed
    assert list(allowed) == video_names(CATALOG)
    with pytest.raises(UnknownModel):
        tr({"model": "qwen3-max", "prompt": "p"})


def test_req_key_must_name_a_video_model() -> None:
    body = {"model": "jimeng_vgfm_t2v_l20", "prompt": "p", "metadata": {"req_key": "jimeng_x"}}
    refused(body, "metadata.req_key")


# -- fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "size", "expect"),
    [
        ("viduq3-pro", {"size": "1920x1080"}, {"ratio": "16:9", "resolution": "1080p"}),
        ("viduq3-pro", {"size": "720*1280"}, {"ratio": "9:16", "resolution": "720p"}),
        ("viduq3-pro", {"width": 960, "height": "540"}, {"ratio": "16:9", "resolution": "540p"}),
        ("kling-v1", {"size": "1080x1080"}, {"ratio": "1:1"}),
        ("wan2.6-t2v", {"size": "1280x720"}, {"size": "1280*720"}),
        # explicit fields win over the size; an alias's resolution is never overridden by it
        ("viduq3-pro", {"size": "1920x1080", "aspect_ratio": "1:1"},
         {"ratio": "1:1", "resolution": "1080p"}),
        ("viduq3t-540p", {"size": "1920x1080"}, {"ratio": "16:9", "resolution": "540p"}),
    ],
)  # fmt: skip
def test_size_becomes_what_the_model_takes(
    model: str, size: dict[str, Any], expect: dict[str, Any]
) -> None:
    got = raw(tr({"model": model, "prompt": "p", **size}))
    for key, value in expect.items():
        assert got[key] == value
    assert "size" not in got or "size" in expect
    assert "width" not in got and "height" not in got


@pytest.mark.parametrize(
    ("model", "size", "param"),
    [
        ("viduq3-pro", {"size": "1000x700"}, "size"),  # no matching ratio
        ("viduq3-pro", {"size": "1024x576"}, "size"),  # 576p: no such resolution
        ("wan2.6-t2v", {"size": "1000x1000"}, "size"),
        ("viduq3-pro", {"width": 1920}, "height"),
        ("viduq3-pro", {"size": "1920x1080", "width": 1280, "height": 720}, "size"),
        ("viduq3-pro", {"width": -5, "height": 5}, "width"),
    ],
)
def test_bad_sizes(model: str, size: dict[str, Any], param: str) -> None:
    refused({"model": model, "prompt": "p", **size}, param)


def test_duration_string_fps_seed_user_and_response_format() -> None:
    submit = tr(
        {"model": "viduq1", "prompt": "p", "duration": "5", "fps": 24, "seed": 7, "n": 1,
         "user": "u-1", "response_format": "url", "style": "ignored"}
    )  # fmt: skip
    assert raw(submit) == {"prompt": "p", "duration": "5", "seed": 7}
    assert submit.draft.extra == {"fps": 24}
    # seed is passed through when the model does not declare it
    assert tr({"model": "kling-v1", "prompt": "p", "seed": 3}).draft.extra == {"seed": 3}


def test_metadata_and_extra_body_merge_and_must_agree() -> None:
    body = {"model": "kling-v1", "prompt": "p", "duration": 5,
            "metadata": {"duration": "5", "mode": "pro", "camera_control": {"type": "simple"}},
            "extra_body": {"mode": "pro", "external_task_id": "e1"}}  # fmt: skip
    submit = tr(body)
    assert raw(submit)["mode"] == "pro" and raw(submit)["duration"] == 5
    assert submit.draft.extra == {"camera_control": {"type": "simple"}, "external_task_id": "e1"}
    body["extra_body"] = {"mode": "std"}
    refused(body, "extra_body.mode")
    refused({"model": "kling-v1", "prompt": "p", "metadata": {"model": "x"}}, "metadata.model")


def test_image_forms() -> None:
    pair = raw(tr({"model": "viduq3-turbo", "prompt": "p", "image": [A, B]}))
    assert (pair["image1_file"], pair["image2_file"]) == (A, B)
    data = tr({"model": "viduq3-turbo", "prompt": "p", "image": "data:image/png;base64,iVBORw0K"})
    first = data.draft.raw["image1_file"]
    assert isinstance(first, MediaSource) and first.data and first.content_type == "image/png"
    refused({"model": "viduq3-turbo", "prompt": "p", "image": [A, B, C]}, "image")
    refused({"model": "viduq3-turbo", "prompt": "p", "image": "not base64 !"}, "image")


def test_image_urls_are_frames_or_references_by_model() -> None:
    jimeng = raw(tr({"model": "jimeng_vgfm_i2v_l20", "prompt": "p",
                     "metadata": {"image_urls": [A]}}))  # fmt: skip
    assert jimeng["image1_file"] == A
    refused({"model": "jimeng_vgfm_i2v_l20", "prompt": "p", "image": A,
             "metadata": {"image_urls": [B]}}, "metadata.image_urls")  # fmt: skip
    mix = raw(tr({"model": "viduq3p-mix-540p", "prompt": "p", "metadata": {"image_urls": [A, B]}}))
    assert mix["image_files"] == [A, B]
    # a model whose only image mode is reference-to-video
    hh = raw(tr({"model": "happyhorse-1.0-r2v", "prompt": "p", "metadata": {"image_urls": [C]}}))
    assert hh["image_files"] == [C]


@pytest.mark.parametrize(
    ("body", "param", "kind"),
    [
        ({"model": "viduq3p-720p", "last_image": B}, "last_image", InvalidParameter),
        ({"model": "viduq3p-720p", "image": A, "reference_image_urls": [B]},
         "reference_image_urls", InvalidParameter),
        ({"model": "viduq3p-mix-720p"}, "reference_image_urls", MissingParameter),
        ({"model": "viduq3p-mix-720p", "last_image": A}, "last_image", InvalidParameter),
        ({"model": "happyhorse-1.0-i2v"}, "image", MissingParameter),
        ({"model": "jimeng_vgfm_t2v_l20", "image": A}, "image", InvalidParameter),
        ({"model": "happyhorse-1.0-i2v", "image": A, "last_image": B}, "last_image",
         InvalidParameter),
        ({"model": "kling-v1", "reference_image_urls": [A]}, "reference_image_urls",
         InvalidParameter),
        ({"model": "viduq1", "n": 3}, "n", InvalidParameter),
        ({"model": "viduq1", "n": True}, "n", InvalidParameter),
        ({"model": "viduq1", "callback_url": "javascript:x"}, "callback_url", InvalidParameter),
        ({"model": 5}, "model", InvalidParameter),
        ({"model": ""}, "model", MissingParameter),
        ({"model": "viduq1", "metadata": ["x"]}, "metadata", InvalidParameter),
    ],
)  # fmt: skip
def test_mode_rules_and_refusals(body: dict[str, Any], param: str, kind: type) -> None:
    err = refused({"prompt": "p", **body}, param)
    assert isinstance(err, kind)


def test_errors_name_the_client_fields() -> None:
    # A catalog slot in an error reads as the field the client sent.
    err = InvalidParameter("Invalid value for parameter 'ratio': 7:3", param="ratio")
    assert in_client_terms(err).message == "Invalid value for parameter 'aspect_ratio': 7:3"
    missing = MissingParameter("image2_file")
    assert in_client_terms(missing).message == "Missing required parameter: last_image"
