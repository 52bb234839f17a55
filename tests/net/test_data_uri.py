"""Inline media: data URIs, bare base64, and content sniffing by magic bytes."""

from __future__ import annotations

import base64

import pytest

from llmage.net.fetch import FetchRejected, decode_data_uri, sniff_content_type

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x01" * 40
GIF = b"GIF89a" + b"\x01" * 20
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 20
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 20
MP4 = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00" + b"\x00" * 20
M4A = b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00" + b"\x00" * 20
MP3_ID3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + b"\x00" * 20
MP3_FRAME = b"\xff\xfb\x90\x64" + b"\x00" * 20
WEBM = b"\x1a\x45\xdf\xa3" + b"\x00" * 20


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (WEBP, "image/webp"),
        (WAV, "audio/wav"),
        (MP4, "video/mp4"),
        (M4A, "audio/mp4"),
        (MP3_ID3, "audio/mpeg"),
        (MP3_FRAME, "audio/mpeg"),
        (WEBM, "video/webm"),
        (b"hello world", None),
        (b"", None),
    ],
)
def test_sniff(data: bytes, ctype: str | None) -> None:
    assert sniff_content_type(data) == ctype


def test_data_uri_with_type() -> None:
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert decode_data_uri(uri) == (PNG, "image/png")


def test_data_uri_type_is_sniffed_when_generic_or_missing() -> None:
    b64 = base64.b64encode(JPEG).decode()
    assert decode_data_uri(f"data:;base64,{b64}") == (JPEG, "image/jpeg")
    assert decode_data_uri(f"data:application/octet-stream;base64,{b64}") == (JPEG, "image/jpeg")
    # Upper-case scheme and parameters, line-wrapped base64, missing padding.
    wrapped = "\n".join(b64[i : i + 20] for i in range(0, len(b64), 20)).rstrip("=")
    assert decode_data_uri(f"DATA:image/jpeg;charset=x;BASE64,{wrapped}") == (JPEG, "image/jpeg")


def test_bare_base64() -> None:
    assert decode_data_uri(base64.b64encode(MP4).decode()) == (MP4, "video/mp4")
    assert decode_data_uri(base64.urlsafe_b64encode(b"\xfb\xff" + PNG).decode())[0] == (
        b"\xfb\xff" + PNG
    )
    assert decode_data_uri(base64.b64encode(b"just text").decode()) == (
        b"just text",
        "application/octet-stream",
    )


def test_percent_encoded_data_uri() -> None:
    assert decode_data_uri("data:,hello%20world") == (b"hello world", "application/octet-stream")
    assert decode_data_uri("data:text/plain,hi") == (b"hi", "text/plain")


@pytest.mark.parametrize(
    "value",
    [
        "data:image/png;base64",
        "data:image/png;base64,!!!notbase64!!!",
        "%%%%",
        "",
        "data:image/png;base64,",
    ],
)
def test_invalid_inline_data(value: str) -> None:
    with pytest.raises(FetchRejected):
        decode_data_uri(value)


def test_inline_size_cap() -> None:
    uri = "data:image/png;base64," + base64.b64encode(PNG + b"\x00" * 1000).decode()
    with pytest.raises(FetchRejected, match="larger than 100"):
        decode_data_uri(uri, max_bytes=100)
    assert decode_data_uri(uri, max_bytes=2000)[1] == "image/png"
