"""Media types from magic bytes against the fixed allow-list: nothing else is ever inline."""

from __future__ import annotations

import pytest

from llmage.domain.media_types import (
    ALLOWED,
    OCTET_STREAM,
    extension,
    is_inline,
    sniff,
    sniff_allowed,
)

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40


@pytest.mark.parametrize(
    ("data", "ctype"),
    [
        (PNG, "image/png"),
        (PNG + b"<html><script>alert(1)</script></html>", "image/png"),  # polyglot: a PNG
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "image/jpeg"),
        (b"GIF89a" + b"\x01" * 10, "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", "video/quicktime"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "video/quicktime"),
        (b"\x00\x00\x00\x20ftypM4A \x00\x00\x02\x00", "audio/mp4"),
        (b"\x1a\x45\xdf\xa3\x01\x00\x00\x00webm", "video/webm"),
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "audio/mpeg"),
        (b"\xff\xfb\x90\x64" + b"\x00" * 8, "audio/mpeg"),  # MPEG-1 layer III frame
    ],
)
def test_allow_listed_types(data: bytes, ctype: str) -> None:
    assert sniff(data) == sniff_allowed(data) == ctype
    assert is_inline(ctype) and extension(ctype) == ALLOWED[ctype]


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        b"<html>" + PNG,  # a PNG signature that does not come first does not count
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<?xml version='1.0'?><x/>",
        b"%PDF-1.7\n",
        b"function f() { alert(1) }",
        b"\xff\xf1\x50\x80",  # ADTS AAC (layer bits 00): not MPEG audio
        b"\xff\xea\x00\x00",  # sync bits, reserved version: not MPEG audio either
        b"",
    ],
)
def test_everything_else_is_an_octet_stream_attachment(data: bytes) -> None:
    assert sniff_allowed(data) is None
    assert sniff(data) == OCTET_STREAM
    assert not is_inline(OCTET_STREAM) and extension(OCTET_STREAM) == "bin"


def test_the_allow_list_has_no_document_or_script_type() -> None:
    for ctype in ALLOWED:
        assert ctype.split("/")[0] in ("image", "video", "audio"), ctype
        assert not any(word in ctype for word in ("html", "xml", "svg", "script", "text"))
