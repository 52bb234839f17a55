"""The one redaction mechanism: a channel's credential values in every form an upstream may echo
them (raw, URL-encoded, base64 at any alignment, JSON-escaped, without `sk-`) and its address
(with or without scheme, port, path; raw or URL-encoded) never survive; ordinary text does."""

from __future__ import annotations

import base64
import json
import re
import secrets
from urllib.parse import quote, quote_plus

import pytest

from llmage.domain.redaction import LIMIT, redactor, scrub

KEY = "sk-SENTINEL-" + secrets.token_hex(8)
CORE = KEY.removeprefix("sk-SENTINEL-")
# An access/secret style value with characters that URL-encoding and JSON change.
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCY=" + secrets.token_hex(4)
URL = "http://10.20.30.40:45678/v1"
R = redactor([KEY, SECRET], [URL])


def echoes(value: str) -> list[str]:
    raw = value.encode()
    return [
        value,
        quote(value, safe=""),
        re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(value, safe="")),
        quote_plus(value),
        f"Bearer%20{quote(value, safe='')}",
        value.removeprefix("sk-"),
        json.dumps(value)[1:-1].replace("/", "\\/"),
        base64.b64encode(raw).decode(),
        base64.b64encode(b"Bearer " + raw).decode(),
        base64.b64encode(b"user:" + raw).decode(),
        base64.b64encode(b"xy:" + raw + b":z").decode(),
        base64.urlsafe_b64encode(b"k=" + raw).decode(),
    ]


@pytest.mark.parametrize("form", echoes(KEY) + echoes(SECRET))
def test_every_echo_of_a_credential_is_redacted(form: str) -> None:
    out = R(f"Invalid credential {form}; check your settings")
    assert "[redacted]" in out
    assert CORE not in out and "SENTINEL" not in out
    assert "wJalrXUtnFEMI" not in out and SECRET[-8:] not in out
    assert out.endswith("; check your settings")


@pytest.mark.parametrize(
    "text",
    [
        f"connect to {URL}/chat/completions failed",
        "connect to 10.20.30.40:45678 failed",
        "host 10.20.30.40 refused",
        "see HTTP://10.20.30.40:45678/V1/Chat",
        f"redirect={quote(URL, safe='')}%2Fchat",
        "user@10.20.30.40:45678",
        f'{{"url": "{URL}"}}',
    ],
)
def test_the_upstream_address_is_redacted(text: str) -> None:
    out = R(text)
    assert "10.20.30.40" not in out and "45678" not in out, out
    assert "[upstream]" in out


def test_ordinary_text_is_left_alone() -> None:
    for text in (
        "Invalid 'temperature': expected a value <= 2, but got 9 instead.",
        "Input data may contain inappropriate content.",
        "address 10.20.30.41 and 110.20.30.40 are other hosts",
        "你好, sk",
        "the task-level risk-free tier",
    ):
        assert R(text) == text


def test_cut_after_redaction_and_no_half_secret_at_the_end() -> None:
    long = "x" * (LIMIT - 5) + KEY
    out = R(long)
    assert len(out) <= LIMIT + len("[redacted]")
    assert CORE[:6] not in out
    # Cut upstream in the middle of the key, without its prefix: the tail still goes.
    assert R("rejected key SENTINEL-" + CORE[:3]) == "rejected key [redacted]"
    assert len(R("y" * 5000)) == LIMIT


def test_generic_key_shapes_go_even_for_an_unknown_channel() -> None:
    out = redactor([], [])("Incorrect API key provided: sk-proj-Ab12Cd34_Ef56")
    assert "Ab12Cd34" not in out
    assert scrub("Bearer%20sk-live-1234567890", 100).count("1234567890") in (0, 1)


def test_values_too_short_to_match_safely_are_ignored_and_builds_are_cached() -> None:
    tiny = redactor(["abc", None, ""], [None, ""])
    assert tiny("abc abc") == "abc abc"
    assert redactor([KEY, SECRET], [URL]) is R
