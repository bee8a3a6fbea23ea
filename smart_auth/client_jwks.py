"""Fetch and cache a client's registered JWKS URL, within the limits its Cache-Control sets.

SMART client-confidential-asymmetric: the server SHALL NOT cache a JWKS longer than its
Cache-Control allows and SHOULD cache it; an unknown ``kid`` forces one refetch (key rotation).
Fetches use the injected ``httpx.AsyncClient``: 5 s timeout, no redirects, 64 kB cap.
"""

import json
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

MAX_JWKS_BYTES = 64 * 1024
TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_AGE = 60
"""Seconds to keep a JWKS served without any Cache-Control (heuristic freshness)."""
LONGEST_MAX_AGE = 24 * 3600
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


class JwksUnavailable(Exception):
    """The JWKS URL failed, redirected, was too large or was not a JWKS (message is loggable)."""


@dataclass(frozen=True)
class _Entry:
    jwks: dict[str, Any]
    fresh_until: float


def freshness(cache_control: str | None) -> int:
    """Seconds a response may be reused under RFC 9111 §5.2.2; 0 means fetch every time."""
    if cache_control is None:
        return DEFAULT_MAX_AGE
    directives = {part.strip().split("=")[0].lower() for part in cache_control.split(",")}
    if directives & {"no-store", "no-cache"}:
        return 0
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return DEFAULT_MAX_AGE
    return min(int(match.group(1)), LONGEST_MAX_AGE)


class ClientJwksCache:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http
        self._entries: dict[str, _Entry] = {}

    async def get(self, url: str, *, refresh: bool = False) -> dict[str, Any]:
        entry = self._entries.get(url)
        if entry is not None and not refresh and entry.fresh_until > time.monotonic():
            return entry.jwks
        jwks, max_age = await self._fetch(url)
        if max_age > 0:
            self._entries[url] = _Entry(jwks, time.monotonic() + max_age)
        else:
            self._entries.pop(url, None)
        return jwks

    async def _fetch(self, url: str) -> tuple[dict[str, Any], int]:
        try:
            async with self._http.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=TIMEOUT_SECONDS,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise JwksUnavailable(f"the JWKS URL answered {response.status_code}")
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit() and int(declared) > MAX_JWKS_BYTES:
                    raise JwksUnavailable("the JWKS is larger than 64 kB")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_JWKS_BYTES:
                        raise JwksUnavailable("the JWKS is larger than 64 kB")
                cache_control = response.headers.get("cache-control")
        except httpx.HTTPError as error:
            raise JwksUnavailable(f"the JWKS URL failed: {type(error).__name__}") from error
        try:
            jwks = json.loads(bytes(body))
        except ValueError as error:
            raise JwksUnavailable("the JWKS is not JSON") from error
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise JwksUnavailable("the JWKS has no keys array")
        return jwks, freshness(cache_control)
