"""Upstream text loses our secrets and upstream addresses before it goes anywhere.

What an upstream can echo back (in an error message, a header, a stream's error event) is what we
sent it: the channel's credential values, and the URL we called. A `Redactor` is built from those
values, in every form an echo takes: raw, URL-encoded (`Bearer%20sk-…`), base64 at each of the
three byte alignments (a key inside an encoded `Basic`/`Bearer` header), JSON-escaped, and the
key without its `sk-` prefix; and the channel's host with or without scheme, port and path, raw
or URL-encoded. On top, anything shaped like a key (`sk-…`, `Bearer …`, `AKLT…`) goes too, so a
credential we do not know of (another tenant's, a rotated one) is not shown either.

Redaction runs on error text only, never on the chunks of a successful stream. The text is
redacted whole and cut afterwards (a cut first could leave half a key that no longer matches),
and text that ends inside a secret (cut by the upstream, or by us) loses that tail too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, quote_plus, urlsplit

REDACTED = "[redacted]"
ADDRESS = "[upstream]"
LIMIT = 500  # longest upstream-derived message we pass on

# Shorter values are not worth matching on their own: they would mangle ordinary words.
_MIN_FORM = 6
# Text ending in this many characters of a secret form (it was cut inside the secret, by us or
# by the upstream) loses them; fewer are not a usable part of a key.
_MIN_TAIL = 6

_KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(sk-|Bearer\s+|AKLT|ak-)[A-Za-z0-9._\-*]{4,}", re.IGNORECASE
)


def scrub(text: str, limit: int = LIMIT) -> str:
    """Only what looks like a credential: for text whose channel is not known."""
    return _KEY_SHAPED.sub(REDACTED, text)[:limit]


def _b64_cores(raw: bytes) -> set[str]:
    """The base64 characters that depend only on `raw`, for each offset it can sit at inside a
    longer encoded string (standard and URL-safe alphabets)."""
    out = set()
    for offset in range(3):
        start = -(-8 * offset // 6)  # first character free of the bytes before
        end = 8 * (offset + len(raw)) // 6  # last character free of the bytes after
        padded = b"\0" * offset + raw
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            out.add(encode(padded).decode("ascii")[start:end])
    return out


def secret_forms(secret: str) -> set[str]:
    """Every spelling of one credential value an upstream may echo."""
    values = {secret}
    if secret[:3].lower() == "sk-":
        values.add(secret[3:])
    forms: set[str] = set()
    for value in values:
        encoded = quote(value, safe="")
        forms.update(
            (
                value,
                encoded,
                quote_plus(value, safe=""),
                re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded),
                value.replace("/", "\\/"),
            )
        )
        forms.update(_b64_cores(value.encode()))
    return {f for f in forms if len(f) >= _MIN_FORM}


def _host_pattern(url: str) -> str | None:
    """A channel's host with whatever surrounds it in a URL: scheme, port, path; raw or
    URL-encoded (`http%3A%2F%2Fhost%3A8080%2Fv1`)."""
    try:
        host = urlsplit(url if "://" in url else f"//{url}").hostname
    except ValueError:
        return None
    if not host:
        return None
    scheme = r"(?:[a-z][a-z0-9+.\-]*(?:://|%3a%2f%2f))?"
    port = r"(?:(?::|%3a)\d{1,5})?"
    path = r"(?:(?:/|%2f)[^\s\"'<>\\)\]]*)?"
    # The host starts a word, or follows an encoded `/`, `:` or `@`.
    start = r"(?:(?<![a-z0-9.\-])|(?<=%2f)|(?<=%3a)|(?<=%40))"
    return rf"{scheme}{start}{re.escape(host)}(?![a-z0-9\-]){port}{path}"


@dataclass(frozen=True, slots=True)
class Redactor:
    """Redacts a fixed set of secrets and upstream hosts. Build it with `redactor()`."""

    _secrets: re.Pattern[str] | None
    _hosts: re.Pattern[str] | None
    _forms: tuple[str, ...]  # longest first, for the tail check

    def __call__(self, text: str, limit: int = LIMIT) -> str:
        if self._secrets is not None:
            text = self._secrets.sub(REDACTED, text)
        if self._hosts is not None:
            text = self._hosts.sub(ADDRESS, text)
        text = _KEY_SHAPED.sub(REDACTED, text)
        if len(text) > limit:
            text = text[:limit]
        return self._drop_partial_tail(text)

    def _drop_partial_tail(self, text: str) -> str:
        # Text cut (here or upstream) inside a secret: its first characters must go as well.
        for form in self._forms:
            for size in range(min(len(form) - 1, len(text)), _MIN_TAIL - 1, -1):
                if text.endswith(form[:size]):
                    return text[:-size] + REDACTED
        return text


@lru_cache(maxsize=256)
def _build(secrets: frozenset[str], urls: frozenset[str]) -> Redactor:
    forms = sorted({f for s in secrets for f in secret_forms(s)}, key=len, reverse=True)
    hosts = [p for u in sorted(urls) if (p := _host_pattern(u)) is not None]
    return Redactor(
        re.compile("|".join(map(re.escape, forms))) if forms else None,
        re.compile("|".join(hosts), re.IGNORECASE) if hosts else None,
        tuple(forms),
    )


def redactor(secrets: Iterable[str | None], urls: Iterable[str | None] = ()) -> Redactor:
    """The redactor for these credential values and upstream URLs (empty values ignored).
    Cached: building one compiles two regular expressions."""
    return _build(
        frozenset(s for s in secrets if s and len(s) >= _MIN_FORM),
        frozenset(u for u in urls if u),
    )
