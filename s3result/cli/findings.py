"""What ``check`` reports, one ``Finding`` per probe, and the network diagnosis shared by its layers.

Its own module so that check and its directory-bucket session layer (session_check) both
import it, and neither imports the other.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..errors import ConnectError, RequestTimeout, S3ResultError, TransportError

if TYPE_CHECKING:
    from ..results.settings import Settings
    from ..s3.client import S3Client

__all__ = ["Finding", "PROBE_CONNECT_TIMEOUT", "arn", "diagnose_transport", "host_port", "timed"]

# What a short probe waits for: a silent server gets one line within a few seconds, not 90.
PROBE_CONNECT_TIMEOUT = 3.0


@dataclass
class Finding:
    """One probe: its name, whether it passed, what was seen, the fix, and its latency."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    ms: float | None = None
    warning: bool = False


def host_port(client: S3Client) -> str:
    """The host:port the client connects to, as a finding names it."""
    parts = urlsplit(client.base_url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _speaks_plain_http(host: str, port: int) -> bool:
    """Whether the server answers a plain HTTP request (so TLS failed because it is not TLS)."""
    try:
        with socket.create_connection((host, port), timeout=PROBE_CONNECT_TIMEOUT) as sock:
            sock.settimeout(PROBE_CONNECT_TIMEOUT)
            sock.sendall(f"HEAD / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def diagnose_transport(error: TransportError, client: S3Client) -> tuple[str, str]:
    """What failed on the network, in the user's terms, and its fix (never an IAM grant)."""
    parts = urlsplit(client.base_url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    text = str(error)
    low = text.lower()
    where = f"{host}:{port}"
    s = client.config
    for said in ("cannot reach the proxy at ", "the proxy at "):  # the proxy from the environment, not the store
        if said in text:
            what, _, fix = text[text.index(said) :].rpartition("; ")
            return (what, fix)
    if "connection refused" in low:
        return (
            f"connection refused: nothing listens on {where}",
            "check the host and port of endpoint_url, and that the store is running",
        )
    if "cannot resolve" in low:
        return (f"cannot resolve the host name {host!r}", "check the host name in endpoint_url (DNS, /etc/hosts)")
    if "tls" in low or "ssl" in low or "certificate" in low:
        if "certificate" in low:  # the handshake got as far as a certificate: this is TLS
            return (
                f"the TLS certificate of {where} does not verify (self-signed, or a private CA): {text}",
                "set ca_bundle=/path/to/ca.pem to trust that CA",
            )
        if parts.scheme == "https" and _speaks_plain_http(host, port):
            return (
                f"TLS handshake failed: the server at {where} speaks plain HTTP",
                "use s3result+http:// (or the store's https port)",
            )
        if "wrong version" in low or "speaks plain http" in low:
            # It answered the handshake with bytes that are not TLS, and a plain request got no
            # HTTP back either: another service on that port (the client can only guess "HTTP").
            return (
                f"TLS handshake failed: the server at {where} speaks neither TLS nor HTTP (another service?)",
                "check endpoint_url's port: it must be the store's S3 API",
            )
        return (f"TLS handshake with {where} failed: {text}", "check that endpoint_url's port speaks TLS")
    if isinstance(error, RequestTimeout) and "no answer" in low:
        return (
            f"{where} accepted the connection but sent no answer within {s.read_timeout:g}s",
            "is endpoint_url an S3 store? a hung server or a proxy holding connections answers like this",
        )
    if isinstance(error, ConnectError) and "timed out" in low:
        return (
            f"no answer to the connection within {s.connect_timeout:g}s from {where}",
            "a firewall drops the packets, or the address is wrong: check endpoint_url",
        )
    if isinstance(error, RequestTimeout):
        return (
            f"{where} closed the connection without an S3 answer: {text}",
            "check endpoint_url (http vs https, the port): it must be the store's S3 API",
        )
    return (text, "check endpoint_url and the network")


def arn(settings: Settings, objects: bool) -> str:
    """The ARN a fix grants on: the bucket, or (``objects``) the keys under the prefix."""
    if not objects:
        return f"arn:aws:s3:::{settings.bucket}"
    return f"arn:aws:s3:::{settings.bucket}/{settings.prefix + '/' if settings.prefix else ''}*"


def timed(fn: Any) -> tuple[Any, float, BaseException | None]:
    """Call ``fn``: its value, the milliseconds it took and the exception it raised, if any."""
    start = time.perf_counter()
    try:
        value = fn()
        error = None
    except S3ResultError as exc:
        value, error = None, exc
    return value, (time.perf_counter() - start) * 1000, error
