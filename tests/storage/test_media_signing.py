"""Sealed media tokens: opaque, unforgeable, bound to an expiry; every failure looks the same."""

from __future__ import annotations

import base64

import orjson
import pytest

from llmage.storage.signing import MediaTokenError, open_grant, safe_filename, seal

SECRET = b"s" * 32
KEY = "sha256/ab/" + "c" * 62 + ".mp4"


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_round_trip() -> None:
    token = seal(KEY, "video", 3600, SECRET, now=1000)
    grant = open_grant(token, SECRET, now=4599)
    assert (grant.key, grant.name, grant.expires) == (KEY, "video", 4600)
    assert "/" not in token and "+" not in token and "=" not in token  # URL-safe as is


def test_opaque() -> None:
    """Nothing of the grant can be read from the token: not the key, its digest, or the name."""
    token = seal(KEY, "secret-name", 3600, SECRET, now=1000)
    raw = _raw(token)
    for needle in (KEY.encode(), b"c" * 16, b"sha256", b"secret-name", b"4600"):
        assert needle not in raw and needle.decode() not in token
    # A fresh nonce each time: two links to the same file share nothing an observer can match.
    again = seal(KEY, "secret-name", 3600, SECRET, now=1000)
    assert again != token and _raw(again)[1:13] != raw[1:13]


def test_expired() -> None:
    token = seal(KEY, "video", 60, SECRET, now=1000)
    open_grant(token, SECRET, now=1059)
    with pytest.raises(MediaTokenError):
        open_grant(token, SECRET, now=1060)


def test_wrong_secret() -> None:
    token = seal(KEY, "video", 60, SECRET, now=1000)
    with pytest.raises(MediaTokenError):
        open_grant(token, b"t" * 32, now=1000)


def test_every_bit_flip_is_rejected() -> None:
    raw = _raw(seal(KEY, "video", 60, SECRET, now=1000))
    for i in range(len(raw)):
        for bit in (0x01, 0x80):
            flipped = raw[:i] + bytes([raw[i] ^ bit]) + raw[i + 1 :]
            with pytest.raises(MediaTokenError):
                open_grant(_b64(flipped), SECRET, now=1000)
    for cut in (1, 5, 16, len(raw) - 1):
        with pytest.raises(MediaTokenError):
            open_grant(_b64(raw[:cut]), SECRET, now=1000)


def test_the_old_readable_format_is_refused() -> None:
    """A base64 JSON payload naming a key and a type (the format links used to have) is not a
    token, whatever it claims."""
    body = _b64(orjson.dumps({"k": KEY, "t": "text/html", "f": "x.html", "e": 10**12}))
    with pytest.raises(MediaTokenError):
        open_grant(f"{body}.{_b64(b'x' * 32)}", SECRET, now=0)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "x" * 3000, "!!!.???", "e30.e30", "AgAA"])
def test_malformed(token: str) -> None:
    with pytest.raises(MediaTokenError):
        open_grant(token, SECRET, now=0)


def test_failures_say_nothing() -> None:
    good = seal(KEY, "video", 60, SECRET, now=1000)
    messages = set()
    for token, now in ((good, 2000.0), (good[:-2] + "AA", 1000.0), ("junk", 1000.0)):
        with pytest.raises(MediaTokenError) as info:
            open_grant(token, SECRET, now=now)
        messages.add(str(info.value))
    assert messages == {"invalid media link"}


def test_header_safety() -> None:
    assert safe_filename('evil"\r\nSet-Cookie: x=1.mp4') == "evil_Set-Cookie_x_1.mp4"
    assert safe_filename("../../") == "media"
    token = seal(KEY, 'a"\r\nX: y', 60, SECRET, now=0)
    assert open_grant(token, SECRET, now=1).name == "a_X_y"
    with pytest.raises(ValueError):
        seal(KEY, "video", 0, SECRET)
    with pytest.raises(ValueError):
        seal(KEY, "video", 60, b"")
