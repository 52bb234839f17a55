"""Signed media tokens: valid, tampered, expired, malformed."""

from __future__ import annotations

import base64

import orjson
import pytest

from llmage.storage.signing import MediaTokenError, safe_filename, sign, verify, verify_grant

SECRET = b"s" * 32
KEY = "sha256/ab/" + "c" * 62 + ".mp4"


def test_round_trip() -> None:
    token = sign(KEY, "video/mp4", "video.mp4", 3600, SECRET, now=1000)
    assert verify(token, SECRET, now=1000) == (KEY, "video/mp4", "video.mp4")
    grant = verify_grant(token, SECRET, now=4599)
    assert grant.expires == 4600
    assert "/" not in token and "+" not in token and "=" not in token  # URL-safe as is


def test_expired() -> None:
    token = sign(KEY, "video/mp4", "video.mp4", 60, SECRET, now=1000)
    with pytest.raises(MediaTokenError, match="expired"):
        verify(token, SECRET, now=1060)


def test_wrong_secret() -> None:
    token = sign(KEY, "video/mp4", "video.mp4", 60, SECRET, now=1000)
    with pytest.raises(MediaTokenError, match="signature"):
        verify(token, b"t" * 32, now=1000)


def test_tampered_payload_is_rejected() -> None:
    token = sign(KEY, "video/mp4", "video.mp4", 60, SECRET, now=1000)
    body, mac = token.split(".")
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for field, value in (("k", "sha256/ab/" + "d" * 62 + ".mp4"), ("e", 10**12), ("t", "a/b")):
        forged = dict(payload, **{field: value})
        forged_body = base64.urlsafe_b64encode(orjson.dumps(forged)).rstrip(b"=").decode()
        with pytest.raises(MediaTokenError, match="signature"):
            verify(f"{forged_body}.{mac}", SECRET, now=1000)
    # Flip one character of the MAC.
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    with pytest.raises(MediaTokenError):
        verify(f"{body}.{flipped}", SECRET, now=1000)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 3000, "!!!.???", "e30.e30"])
def test_malformed(token: str) -> None:
    with pytest.raises(MediaTokenError):
        verify(token, SECRET, now=0)


def test_header_safety() -> None:
    assert safe_filename('evil"\r\nSet-Cookie: x=1.mp4') == "evil_Set-Cookie_x_1.mp4"
    assert safe_filename("../../") == "media"
    token = sign(KEY, "text/html\r\nX: y", "a.mp4", 60, SECRET, now=0)
    assert verify(token, SECRET, now=1)[1] == "application/octet-stream"
    with pytest.raises(ValueError):
        sign(KEY, "video/mp4", "a.mp4", 0, SECRET)
    with pytest.raises(ValueError):
        sign(KEY, "video/mp4", "a.mp4", 60, b"")
