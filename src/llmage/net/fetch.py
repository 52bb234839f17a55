"""The one way to fetch a URL a user gave us (input images and videos, webhooks): DESIGN §8.

Server-side request forgery is the risk: a URL that makes *us* talk to our own network, a cloud
metadata service or loopback admin ports. Defences, in order:
- http/https only, no `user:pass@` (credentials in URLs end up in logs);
- the host is resolved once here and rejected if ANY address is not public (a name with one
  public and one private address must not be a coin toss);
- the connection goes to exactly the addresses we vetted: aiohttp is given a resolver that only
  knows them, so a DNS answer that changes between check and connect (rebinding) cannot win.
  TLS still verifies the certificate for the hostname (SNI and Host are the real name);
- redirects are followed by hand, at most MAX_REDIRECTS, each hop vetted like the first;
- bodies are capped while streaming and the whole exchange has one deadline.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import socket
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import unquote_to_bytes

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from llmage.domain.errors import InvalidRequest
from llmage.domain.media_types import sniff_allowed

MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
T = TypeVar("T")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges `ipaddress` does not flag (or flags only via is_global), named so errors say why.
_EXTRA_BLOCKED: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("100.64.0.0/10"), "carrier-grade NAT"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignment"),
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "local-use NAT64"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class FetchError(InvalidRequest):
    """Base of both fetch errors; `reason` names the problem (never credentials)."""

    code = "url_fetch_failed"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FetchRejected(FetchError):
    """Policy said no: scheme, credentials, a non-public address, too many redirects, too big."""

    code = "url_rejected"


class FetchFailed(FetchError):
    """The fetch was allowed but did not work: DNS, connection, timeout, HTTP error status."""


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    content_type: str
    final_url: str


def address_problem(ip: IPAddress) -> str | None:
    """Why this address must not be contacted, or None if it is a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv4-mapped and NAT64 addresses are translations: they reach exactly the embedded
        # IPv4 address, so that address decides (DNS64 networks synthesize NAT64 for everyone).
        translated = ip.ipv4_mapped
        if translated is None and ip in _NAT64:
            translated = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if translated is not None:
            inner = address_problem(translated)
            return f"{inner} (embedded in IPv6)" if inner else None
        # 6to4 and Teredo tunnel towards an embedded IPv4 address: it must be public too.
        tunnelled = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if tunnelled is not None and address_problem(tunnelled):
            return f"{address_problem(tunnelled)} (embedded in IPv6)"
        if ip.is_site_local:
            return "site-local"
    checks = (
        (ip.is_unspecified, "unspecified"),
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),  # includes 169.254.169.254, the cloud metadata service
        (ip.is_multicast, "multicast"),
        (ip.is_private, "private"),
        (ip.is_reserved, "reserved"),
    )
    for flagged, name in checks:
        if flagged:
            return name
    for net, name in _EXTRA_BLOCKED:
        if ip.version == net.version and ip in net:
            return name
    # A net beside the ones named above: unreachable while this Python's is_global is exactly
    # "not private and not shared space", kept for releases whose special registries differ.
    if not ip.is_global:  # pragma: no cover
        return "non-public"
    return None


class _PinnedResolver(AbstractResolver):
    """Answers only with addresses the fetcher already vetted; never asks DNS itself."""

    def __init__(self) -> None:
        self.pinned: dict[str, list[IPAddress]] = {}

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = self.pinned.get(host.lower())
        if not addresses:
            raise OSError(f"host {host} was not vetted")
        return [
            {
                "hostname": host,
                "host": str(ip),
                "port": port,
                "family": socket.AF_INET6 if ip.version == 6 else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
            for ip in addresses
        ]

    async def close(self) -> None:
        self.pinned.clear()


class GuardedFetcher:
    def __init__(
        self,
        max_bytes: int,
        timeout: float,
        allow_hosts: frozenset[str] = frozenset(),
    ) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_hosts = frozenset(h.strip().lower() for h in allow_hosts)

    # --- vetting --------------------------------------------------------------------------

    def _parse(self, url: str | URL) -> URL:
        try:
            parsed = url if isinstance(url, URL) else URL(url)
        except (ValueError, TypeError) as exc:
            raise FetchRejected("URL cannot be parsed") from exc
        if parsed.scheme not in ("http", "https"):
            raise FetchRejected("only http and https URLs can be fetched")
        if "@" in (parsed.raw_authority or ""):
            raise FetchRejected("URLs with embedded credentials are not allowed")
        if not parsed.raw_host:
            raise FetchRejected("URL has no host")
        return parsed

    def _allowed(self, host: str, port: int) -> bool:
        label = f"[{host}]" if ":" in host else host
        return f"{label}:{port}" in self.allow_hosts

    async def _vet(self, url: URL, resolver: _PinnedResolver) -> None:
        """Resolve the host once, check every address, pin them for the connection."""
        host = (url.raw_host or "").lower()
        port = url.port or (443 if url.scheme == "https" else 80)
        allowed = self._allowed(host, port)
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            if not allowed and (host == "localhost" or host.endswith(".localhost")):
                raise FetchRejected(f"host {host} is a loopback name") from None
            addresses = await self._resolve(host, port)
        if not allowed:
            for ip in addresses:
                problem = address_problem(ip)
                if problem and str(ip) == host:
                    raise FetchRejected(f"address {host} is {problem}, not public")
                if problem:
                    raise FetchRejected(f"host {host} resolves to a {problem} address")
        resolver.pinned[host] = addresses

    @staticmethod
    async def _resolve(host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise FetchFailed(f"host {host} cannot be resolved") from exc
        found: list[IPAddress] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if ip not in found:
                found.append(ip)
        if not found:
            raise FetchFailed(f"host {host} cannot be resolved")
        return found

    # --- requests -------------------------------------------------------------------------

    def _session(self, resolver: _PinnedResolver) -> aiohttp.ClientSession:
        # A session per call: pooled connections are never shared between differently vetted
        # URLs, and no cookies travel from one hop to the next.
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=4)
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # an HTTP(S)_PROXY variable must not route around the checks
            headers={"User-Agent": "llmage-fetch"},
        )

    async def _read_capped(self, resp: aiohttp.ClientResponse) -> bytes:
        declared = resp.content_length
        if declared is not None and declared > self.max_bytes:
            raise FetchRejected(f"response is larger than {self.max_bytes} bytes")
        parts: list[bytes] = []
        total = 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            total += len(chunk)
            if total > self.max_bytes:
                raise FetchRejected(f"response is larger than {self.max_bytes} bytes")
            parts.append(chunk)
        return b"".join(parts)

    async def fetch(self, url: str) -> Fetched:
        """GET a user-supplied URL: the body, its content type and the URL it finally came from."""
        return await self._guarded(self._fetch(self._parse(url)))

    async def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST a JSON body (webhooks); returns the status. Redirects are not followed."""
        return await self._guarded(self._post(self._parse(url), body, headers))

    async def _guarded(self, work: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self.timeout):
                return await work
        except TimeoutError:
            raise FetchFailed(f"fetch timed out after {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            # The exception text can contain the full URL: only its class name goes out.
            raise FetchFailed(f"connection failed ({type(exc).__name__})") from None

    async def _fetch(self, url: URL) -> Fetched:
        resolver = _PinnedResolver()
        async with self._session(resolver) as session:
            for _hop in range(MAX_REDIRECTS + 1):
                await self._vet(url, resolver)
                async with session.get(url, allow_redirects=False) as resp:
                    if resp.status in REDIRECTS and "Location" in resp.headers:
                        try:
                            url = self._parse(url.join(URL(resp.headers["Location"])))
                        except ValueError as exc:
                            raise FetchRejected("redirect target cannot be parsed") from exc
                        continue
                    if not 200 <= resp.status < 300:
                        raise FetchFailed(f"HTTP {resp.status} from {url.raw_host}")
                    data = await self._read_capped(resp)
                    declared = resp.headers.get("Content-Type", "")
                    ctype = declared.split(";", 1)[0].strip().lower()
                    if not ctype or ctype in ("application/octet-stream", "binary/octet-stream"):
                        ctype = sniff_content_type(data) or "application/octet-stream"
                    return Fetched(data, ctype, str(url))
            raise FetchRejected(f"more than {MAX_REDIRECTS} redirects")

    async def _post(self, url: URL, body: bytes, headers: dict[str, str]) -> int:
        resolver = _PinnedResolver()
        async with self._session(resolver) as session:
            await self._vet(url, resolver)
            sent = {"Content-Type": "application/json", **headers}
            async with session.post(url, data=body, headers=sent, allow_redirects=False) as resp:
                await self._read_capped(resp)  # drain (capped) so the exchange completes
                return resp.status


# --- inline media -------------------------------------------------------------------------


def sniff_content_type(data: bytes) -> str | None:
    """Media type from magic bytes for the formats we handle; None when unrecognised."""
    return sniff_allowed(data)


def decode_data_uri(value: str, max_bytes: int | None = None) -> tuple[bytes, str]:
    """`data:<type>;base64,<data>` or a bare base64 string → (bytes, content type)."""
    text = value.strip()
    declared = ""
    if text[:5].lower() == "data:":
        header, sep, payload = text[5:].partition(",")
        if not sep:
            raise FetchRejected("data URI has no comma before its data")
        params = [p.strip() for p in header.split(";")]
        declared = params[0].lower()
        is_base64 = any(p.lower() == "base64" for p in params[1:])
    else:
        payload, is_base64 = text, True
    if max_bytes is not None and len(payload) * 3 // 4 > max_bytes + 2:
        raise FetchRejected(f"inline data is larger than {max_bytes} bytes")
    try:
        if is_base64:
            compact = "".join(payload.split())
            compact += "=" * (-len(compact) % 4)
            # Standard or URL-safe alphabet; validate=True refuses anything else outright.
            altchars = b"-_" if ("-" in compact or "_" in compact) else None
            data = base64.b64decode(compact, altchars=altchars, validate=True)
        else:
            data = unquote_to_bytes(payload)
    except (binascii.Error, ValueError) as exc:
        raise FetchRejected("inline data is not valid base64") from exc
    if not data:
        raise FetchRejected("inline data is empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise FetchRejected(f"inline data is larger than {max_bytes} bytes")
    if not declared or declared in ("application/octet-stream", "text/plain"):
        declared = sniff_content_type(data) or declared or "application/octet-stream"
    return data, declared
