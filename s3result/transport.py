"""The seam between the S3 client and the wire.

``Transport`` is the one method the client needs: send one fully built request, return the
status, headers and whole body. ``HttpcoreTransport`` is the production implementation: it
drives httpx's own connection pool (httpcore) directly with pre-built byte headers, which
costs a third of the CPU of ``httpx.Client``'s request/response models on small objects.
``HttpxTransport`` adapts any ``httpx.BaseTransport`` (``httpx.MockTransport`` in tests, a
proxy-aware ``httpx.HTTPTransport`` for users who need one).

Each transport turns its library's exceptions into ours here, in one place each.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConnectError, RequestTimeout, TransportError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HttpcoreTransport",
    "HttpxTransport",
    "RawResponse",
    "Transport",
    "make_ssl_context",
]


@dataclass(slots=True)
class RawResponse:
    """Status, headers (lower-cased names) and the whole body."""

    status: int
    headers: dict[str, str]
    body: bytes


class Transport(Protocol):
    """Sends one request; raises ``TransportError`` subclasses, never library exceptions."""

    def request(self, method: bytes, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
        """Send and read the whole response."""
        ...  # pragma: no cover

    def close(self) -> None:
        """Release every pooled connection."""
        ...  # pragma: no cover


def make_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify with ``ca_bundle`` when given, else certifi's roots (httpx's default)."""
    if ca_bundle is not None and ca_bundle.lower() in ("0", "false", "off", "no", "n"):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if ca_bundle is None or ca_bundle.lower() in ("1", "true", "on", "yes", "y"):
        import certifi  # installed with httpx; imported here so http:// never pays for it

        return ssl.create_default_context(cafile=certifi.where())
    return ssl.create_default_context(cafile=ca_bundle)


def _describe(exc: BaseException) -> str:
    """The innermost cause's text: 'Connection refused' beats httpcore's wrapper."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = str(seen) or str(exc) or type(exc).__name__
    return text


def _connect_message(exc: BaseException) -> str:
    text = _describe(exc)
    low = text.lower()
    if "certificate" in low or "ssl" in low or "tls" in low:
        return f"TLS verification failed ({text}); set ca_bundle=/path/to/ca.pem for a private CA"
    if (
        "name or service not known" in low
        or "nodename nor servname" in low
        or "getaddrinfo" in low
        or "name resolution" in low
    ):
        return f"cannot resolve the endpoint's host name ({text}); check endpoint_url"
    return f"cannot connect ({text}); check endpoint_url and that the store is running"


class HttpcoreTransport:
    """httpx's pool (httpcore), driven directly: pooled keep-alive, no per-request models."""

    def __init__(
        self,
        *,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Imported here, not at module level: importing s3result must stay cheap (cold start).
        import httpcore

        self._httpcore = httpcore
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            retries=0,
        )
        self._extensions = {
            "timeout": {"connect": connect_timeout, "read": read_timeout, "write": read_timeout, "pool": read_timeout}
        }

    def request(self, method: bytes, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
        """Send through the pool; headers must already hold Host and Content-Length."""
        hc = self._httpcore
        with self._map_errors():
            request = hc.Request(method, url, headers=headers, content=body, extensions=self._extensions)
            response = self._pool.handle_request(request)
            try:
                data = response.read()
            finally:
                response.close()
        return RawResponse(
            response.status,
            {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers},
            data,
        )

    @contextlib.contextmanager
    def _map_errors(self) -> Iterator[None]:
        hc = self._httpcore
        try:
            yield
        except (hc.ConnectTimeout, hc.PoolTimeout) as exc:
            raise ConnectError(f"timed out connecting ({_describe(exc)}); check endpoint_url and the network") from exc
        except (hc.ReadTimeout, hc.WriteTimeout) as exc:
            raise RequestTimeout(
                f"no answer within the timeout ({_describe(exc)}); raise read_timeout if the store is slow"
            ) from exc
        except hc.ConnectError as exc:
            raise ConnectError(_connect_message(exc)) from exc
        except (hc.ReadError, hc.WriteError, hc.RemoteProtocolError) as exc:
            raise RequestTimeout(f"connection lost mid-request ({_describe(exc)})") from exc
        except (hc.LocalProtocolError, hc.UnsupportedProtocol) as exc:
            raise TransportError(f"cannot send the request ({_describe(exc)})") from exc

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()


class HttpxTransport:
    """Adapts an ``httpx.BaseTransport``: the injectable seam for tests and custom setups."""

    def __init__(self, transport: httpx.BaseTransport) -> None:
        import httpx

        self._httpx = httpx
        self._transport = transport

    def request(self, method: bytes, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
        """Send through the wrapped transport and read the body."""
        hx = self._httpx
        req = hx.Request(method.decode(), url, headers=headers, content=body)
        try:
            response = self._transport.handle_request(req)
            try:
                data = response.read()
            finally:
                response.close()
        except hx.TimeoutException as exc:
            cls: Any = ConnectError if isinstance(exc, (hx.ConnectTimeout, hx.PoolTimeout)) else RequestTimeout
            raise cls(f"timed out ({_describe(exc)})") from exc
        except hx.ConnectError as exc:
            raise ConnectError(_connect_message(exc)) from exc
        except (hx.ReadError, hx.WriteError, hx.RemoteProtocolError) as exc:
            raise RequestTimeout(f"connection lost mid-request ({_describe(exc)})") from exc
        except hx.TransportError as exc:
            raise TransportError(f"cannot send the request ({_describe(exc)})") from exc
        return RawResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()}, data)

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()
