"""normalize_params and json_schema, on hand-made specs and on the shipped catalog."""

from __future__ import annotations

import pytest

from llmage.catalog import load_catalog
from llmage.domain.catalog import ModelEntry
from llmage.domain.params import (
    InvalidParameterError,
    MissingParameterError,
    ParamSpec,
    check_json_types,
    check_value,
    json_schema,
    normalize_params,
    read_fields,
)

SPECS = (
    ParamSpec("prompt", "string", required=True),
    ParamSpec("negative_prompt", "string"),
    ParamSpec(
        "ratio", "string", default="adaptive", enum=("adaptive", "16:9", "1:1"), aliases=("radio",)
    ),
    ParamSpec(
        "resolution", "string", default="720p", enum=("720p", "1080p"), case_insensitive=True
    ),
    ParamSpec("duration", "integer", default=5, minimum=4, maximum=15),
    ParamSpec("off_peak", "string", default="N", enum=("Y", "N")),
    ParamSpec("audio", "boolean"),
    ParamSpec("cfg", "number", minimum=0, maximum=1),
    ParamSpec("image1_file", "image", aliases=("image_file1",)),
    ParamSpec("image_files", "images", max_items=9),
)


def entry(llmid: str) -> ModelEntry:
    found = load_catalog().by_llmid(llmid)
    assert found is not None
    return found


def test_defaults_filled_and_unknown_keys_passed_through() -> None:
    out = normalize_params(SPECS, {"prompt": "cat", "seed": 42})
    assert out == {
        "prompt": "cat",
        "ratio": "adaptive",
        "resolution": "720p",
        "duration": 5,
        "off_peak": "N",
        "seed": 42,
    }


def test_aliases_map_to_canonical_names() -> None:
    out = normalize_params(SPECS, {"prompt": "p", "radio": "16:9", "image_file1": b"jpeg"})
    assert out["ratio"] == "16:9" and "radio" not in out
    assert out["image1_file"] == b"jpeg" and "image_file1" not in out


def test_conflicting_alias_and_name_rejected() -> None:
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(SPECS, {"prompt": "p", "ratio": "1:1", "radio": "16:9"})
    assert err.value.param == "ratio"
    # the same value twice is harmless
    assert (
        normalize_params(SPECS, {"prompt": "p", "ratio": "1:1", "radio": "1:1"})["ratio"] == "1:1"
    )


def test_integer_coercion_from_form_strings() -> None:
    assert normalize_params(SPECS, {"prompt": "p", "duration": "10"})["duration"] == 10
    assert normalize_params(SPECS, {"prompt": "p", "duration": " 12 "})["duration"] == 12
    assert normalize_params(SPECS, {"prompt": "p", "duration": 6.0})["duration"] == 6
    assert normalize_params(SPECS, {"prompt": "p", "duration": "8.0"})["duration"] == 8


@pytest.mark.parametrize("bad", ["ten", "5.5", True, [5]])
def test_integer_rejects_non_integers(bad: object) -> None:
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(SPECS, {"prompt": "p", "duration": bad})
    assert err.value.param == "duration"
    assert "integer" in err.value.message


def test_empty_form_field_means_default() -> None:
    out = normalize_params(SPECS, {"prompt": "p", "duration": "", "ratio": ""})
    assert out["duration"] == 5 and out["ratio"] == "adaptive"
    # free text keeps an explicit empty string
    assert normalize_params(SPECS, {"prompt": "p", "negative_prompt": ""})["negative_prompt"] == ""


def test_booleans_and_yes_no() -> None:
    for raw, flag in ((True, True), ("true", True), ("Y", True), ("0", False), ("no", False)):
        assert normalize_params(SPECS, {"prompt": "p", "audio": raw})["audio"] is flag
    for raw, yn in ((True, "Y"), (False, "N"), ("y", "Y"), ("N", "N"), ("true", "Y")):
        assert normalize_params(SPECS, {"prompt": "p", "off_peak": raw})["off_peak"] == yn
    with pytest.raises(InvalidParameterError):
        normalize_params(SPECS, {"prompt": "p", "audio": "maybe"})


def test_enum_violation_names_param_and_allowed_values() -> None:
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(SPECS, {"prompt": "p", "ratio": "4:3"})
    assert err.value.param == "ratio"
    assert err.value.allowed == ("adaptive", "16:9", "1:1")
    assert "'ratio'" in err.value.message
    assert "adaptive, 16:9, 1:1" in err.value.message


def test_enum_violation_via_alias_mentions_both_names() -> None:
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(SPECS, {"prompt": "p", "radio": "4:3"})
    assert err.value.param == "ratio" and "radio" in err.value.message


def test_case_insensitive_enum_returns_canonical_value() -> None:
    assert normalize_params(SPECS, {"prompt": "p", "resolution": "1080P"})["resolution"] == "1080p"
    with pytest.raises(InvalidParameterError):
        normalize_params(SPECS, {"prompt": "p", "off_peak": "maybe"})


def test_range_violation() -> None:
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(SPECS, {"prompt": "p", "duration": 16})
    assert err.value.param == "duration"
    assert "between 4 and 15" in err.value.message
    with pytest.raises(InvalidParameterError, match="between 0 and 1"):
        normalize_params(SPECS, {"prompt": "p", "cfg": "1.5"})
    assert normalize_params(SPECS, {"prompt": "p", "cfg": "0.5"})["cfg"] == 0.5


@pytest.mark.parametrize("raw", [{}, {"prompt": ""}, {"prompt": "   "}, {"prompt": None}])
def test_missing_required_prompt(raw: dict[str, object]) -> None:
    with pytest.raises(MissingParameterError) as err:
        normalize_params(SPECS, raw)
    assert err.value.param == "prompt"
    assert err.value.message == "Missing required parameter: prompt"


def test_max_items_for_image_files() -> None:
    nine = [b"x"] * 9
    assert normalize_params(SPECS, {"prompt": "p", "image_files": nine})["image_files"] is nine
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(SPECS, {"prompt": "p", "image_files": [b"x"] * 10})
    assert err.value.param == "image_files" and "9" in err.value.message


def test_single_file_slot_takes_one_file() -> None:
    assert normalize_params(SPECS, {"prompt": "p", "image1_file": "https://x/1.png"})
    with pytest.raises(InvalidParameterError, match="one file"):
        normalize_params(SPECS, {"prompt": "p", "image1_file": [b"a", b"b"]})


def test_required_file_list_must_not_be_empty() -> None:
    r2v = entry("6o9n_7u2K927hNlD8_72f")
    with pytest.raises(MissingParameterError) as err:
        normalize_params(r2v.params, {"prompt": "p", "image_files": []})
    assert err.value.param == "image_files"


def test_catalog_seedance_15_with_radio_and_image_file1() -> None:
    s15 = entry("7RTOJD6K8A7RXCMG4GnQ9")
    out = normalize_params(
        s15.params,
        {"prompt": "cat", "radio": "keep_ratio", "duration": "5", "image_file1": b"1"},
    )
    assert out == {
        "prompt": "cat",
        "ratio": "keep_ratio",
        "resolution": "1080p",
        "duration": 5,
        "image1_file": b"1",
    }
    with pytest.raises(InvalidParameterError, match="between 4 and 12"):
        normalize_params(s15.params, {"prompt": "cat", "duration": 13})


def test_catalog_happyhorse_i2v_accepts_upper_case_resolution() -> None:
    hh = entry("7y7kfYM0Xasizyi37WvAZ")
    out = normalize_params(hh.params, {"prompt": "p", "image1_file": b"x", "resolution": "720P"})
    assert out["resolution"] == "720p"
    with pytest.raises(MissingParameterError) as err:
        normalize_params(hh.params, {"prompt": "p"})
    assert err.value.param == "image1_file"


def test_catalog_wan_duration_enum() -> None:
    wan = entry("u9HZyfDoqU6uKI6M1BTks")
    assert normalize_params(wan.params, {"prompt": "p", "duration": "10"})["duration"] == 10
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(wan.params, {"prompt": "p", "duration": 7})
    assert err.value.allowed == (5, 10, 15)
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(wan.params, {"prompt": "p", "size": "1024*1024"})
    assert err.value.param == "size" and "1920*1080" in err.value.message


def test_catalog_vidu_defaults() -> None:
    vidu = entry("r0ill7L0s6PtBS8mkmg-7")
    out = normalize_params(vidu.params, {"prompt": "p"})
    assert out == {
        "prompt": "p",
        "off_peak": "N",
        "duration": 10,
        "ratio": "16:9",
        "resolution": "1080p",
    }
    with pytest.raises(InvalidParameterError):
        normalize_params(vidu.params, {"prompt": "p", "duration": 17})


def test_json_schema_structure() -> None:
    schema = json_schema(SPECS)
    assert schema["type"] == "object"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["prompt"]
    props = schema["properties"]
    assert isinstance(props, dict)
    assert props["ratio"] == {
        "type": "string",
        "enum": ["adaptive", "16:9", "1:1"],
        "default": "adaptive",
        "x-aliases": ["radio"],
    }
    assert props["duration"]["minimum"] == 4 and props["duration"]["maximum"] == 15
    assert props["image1_file"]["type"] == "string"
    assert props["image1_file"]["format"] == "binary"
    assert props["image1_file"]["x-aliases"] == ["image_file1"]
    files = props["image_files"]
    assert files["type"] == "array" and files["maxItems"] == 9
    assert files["items"]["format"] == "binary"
    assert props["resolution"]["x-case-insensitive"] is True


def test_json_schema_for_every_catalog_model() -> None:
    allowed_types = {"string", "integer", "number", "boolean", "array"}
    for model in load_catalog().entries():
        schema = json_schema(model.params)
        props = schema["properties"]
        assert isinstance(props, dict)
        required = schema["required"]
        assert isinstance(required, list) and set(required) <= set(props)
        for prop in props.values():
            assert prop["type"] in allowed_types
            if "enum" in prop:
                assert isinstance(prop["enum"], list) and prop["enum"]
                if "default" in prop:
                    assert prop["default"] in prop["enum"]


def test_unknown_param_type_rejected() -> None:
    with pytest.raises(ValueError, match="unknown type"):
        ParamSpec("x", "file")


# -- one value where one is expected (issue 6) ------------------------------------------------


@pytest.mark.parametrize("kind", ["string", "integer", "number", "boolean"])
@pytest.mark.parametrize("bad", [["x"], ["a", "b"], [], {"a": 1}, {}])
def test_lists_and_objects_are_never_one_value(kind: str, bad: object) -> None:
    spec = ParamSpec("field", kind)
    with pytest.raises(InvalidParameterError) as err:
        check_value(spec, bad)
    assert err.value.param == "field"
    assert "'field'" in err.value.message and "expected a single " + kind in err.value.message


def test_a_repeated_form_field_is_named_as_such() -> None:
    with pytest.raises(InvalidParameterError) as err:
        normalize_params(SPECS, {"prompt": ["a", "b"]})
    assert err.value.param == "prompt"
    assert "a list of 2 values" in err.value.message and "more than once" in err.value.message


CALLBACK = ParamSpec("callback_url", "string", format="uri", max_length=64)


@pytest.mark.parametrize(
    "good", ["http://a.example", "https://a.example:8443/hook?x=1#f", "HTTP://A.EXAMPLE/x"]
)
def test_uri_format_takes_http_urls(good: str) -> None:
    assert check_value(CALLBACK, good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "ftp://a.example/x",
        "javascript:alert(1)",
        "http://",
        "http:// a.example",
        "http://a.example/x y",
        "http://a.example/\x00",
        "//a.example/x",
        "a.example",
        "http://a.example/" + "x" * 64,
        5,
    ],
)
def test_uri_format_refuses_everything_else(bad: object) -> None:
    with pytest.raises(InvalidParameterError) as err:
        check_value(CALLBACK, bad)
    assert err.value.param == "callback_url"


def test_read_fields_reads_only_its_fields() -> None:
    specs = (ParamSpec("model", "string", required=True), CALLBACK, ParamSpec("n", "integer"))
    out = read_fields(specs, {"model": "m", "callback_url": "", "n": "2", "other": ["x"]})
    assert out == {"model": "m", "n": 2}  # an empty callback_url= form field means none
    with pytest.raises(MissingParameterError):
        read_fields(specs, {"callback_url": "http://a.example"})
    with pytest.raises(InvalidParameterError) as err:
        read_fields(specs, {"model": "m", "n": [1, 2]})
    assert err.value.param == "n"


def test_format_and_length_are_in_the_json_schema() -> None:
    schema = json_schema((CALLBACK,))
    assert schema["properties"] == {
        "callback_url": {"type": "string", "format": "uri", "maxLength": 64}
    }


def test_a_format_needs_a_string_type() -> None:
    with pytest.raises(ValueError):
        ParamSpec("n", "integer", format="uri")
    with pytest.raises(ValueError):
        ParamSpec("u", "string", format="email")


TYPES = {"temperature": ("number",), "stop": ("string", "array"), "seed": ("integer",)}


def test_json_types_accept_their_types_and_null() -> None:
    check_json_types({"temperature": 1, "stop": ["x"], "seed": 3, "other": {}}, TYPES)
    check_json_types({"temperature": 0.5, "stop": "x", "seed": None}, TYPES)


@pytest.mark.parametrize(
    "body, param",
    [
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"stop": 5}, "stop"),
        ({"stop": {"a": 1}}, "stop"),
        ({"seed": 1.5}, "seed"),
        ({"seed": False}, "seed"),
    ],
)
def test_json_types_refuse_other_types(body: dict[str, object], param: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        check_json_types(body, TYPES)
    assert err.value.param == param and f"'{param}'" in err.value.message
