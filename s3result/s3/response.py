"""A store's answer as the client reads it, and the seam that sends a request to get one.

At the bottom of the client, below every transport: the steps that judge an answer (errors,
recovery, integrity) need only this value, never the transports that make it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

__all__ = ["RawResponse", "Transport", "redirect_host"]

_ENDPOINT_ELEMENT = re.compile(rb"<Endpoint>([^<]{1,255})</Endpoint>")


@dataclass(slots=True)
class RawResponse:
    """Status, headers (lower-cased names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class Transport(Protocol):
    """Sends one request; raises ``TransportError`` subclasses, never library exceptions."""

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send ``method target`` to the transport's origin and read the whole response.

        ``timeout`` caps every wait of this request (pool, connect, each read and write)
        below the configured ones: a caller's deadline bounds the request.
        """
        ...  # pragma: no cover

    def close(self) -> None:
        """Release every pooled connection."""
        ...  # pragma: no cover


def redirect_host(resp: RawResponse) -> str:
    """Where a 307 sends the request: the ``<Endpoint>`` element, else the Location's host."""
    found = _ENDPOINT_ELEMENT.search(resp.body[:8192])
    if found is not None:
        return found.group(1).decode("utf-8", "replace").strip()
    location = resp.headers.get("location", "")
    return (urlsplit(location).hostname or "") if location else ""
