"""What a stored file *is*, decided from its bytes against a fixed allow-list.

The one place that names the media types the platform stores and serves. A type comes only
from magic bytes, never from what a client, an upstream or a file name claims: a PNG/HTML
polyglot is a PNG, an HTML page is `application/octet-stream`. Nothing outside `ALLOWED` is
ever served inline, and no text, HTML or script type is in it.
"""

from __future__ import annotations

OCTET_STREAM = "application/octet-stream"

# Served inline with these exact types (and nosniff); anything else is an attachment.
ALLOWED: dict[str, str] = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "audio/mp4": "m4a",
}

SNIFF_BYTES = 64  # every signature below is decided within the first 64 bytes

_M4A_BRANDS = (b"M4A ", b"M4B ")
_QUICKTIME_ATOMS = (b"moov", b"mdat", b"wide")  # pre-ftyp QuickTime files open with these


def _mpeg_audio_frame(head: bytes) -> bool:
    # 11 sync bits, then a version other than "reserved" (01) and a layer other than 00:
    # ADTS AAC (layer 00) and random 0xFF bytes do not pass.
    if len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    return (head[1] >> 3) & 0x03 != 0x01 and (head[1] >> 1) & 0x03 != 0


def sniff_allowed(data: bytes) -> str | None:
    """The allow-listed type these bytes start with, or None when they match none."""
    head = data[:SNIFF_BYTES]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _M4A_BRANDS:
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    if head[4:8] in _QUICKTIME_ATOMS:
        return "video/quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM (and Matroska, played the same way)
        return "video/webm"
    if head.startswith(b"ID3") or _mpeg_audio_frame(head):
        return "audio/mpeg"
    return None


def sniff(data: bytes) -> str:
    """The type to record and serve for these bytes: allow-listed, else octet-stream."""
    return sniff_allowed(data) or OCTET_STREAM


def is_inline(content_type: str) -> bool:
    """Whether a type may be shown inline (exactly one of the allow-list)."""
    return content_type in ALLOWED


def extension(content_type: str) -> str:
    """File extension for a download name; `bin` for anything off the allow-list."""
    return ALLOWED.get(content_type, "bin")
