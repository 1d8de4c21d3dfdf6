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
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

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

    def request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
        """Send ``method target`` to the transport's origin and read the whole response."""
        ...  # pragma: no cover

    def close(self) -> None:
        """Release every pooled connection."""
        ...  # pragma: no cover


def make_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify with ``ca_bundle``, else AWS_CA_BUNDLE, SSL_CERT_FILE/DIR, else certifi (see ``network``)."""
    from .network import ssl_context

    return ssl_context(ca_bundle)


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
    """httpx's HTTP/1.1 connections (httpcore), pooled here with pre-built byte headers.

    httpcore's own ``ConnectionPool`` costs ~40 us per request in bookkeeping a result
    backend does not need (HTTP/2, proxies, a waiting queue); this pool is a lock, a stack
    of idle keep-alive connections and a semaphore bounding them to ``max_connections``.
    """

    def __init__(
        self,
        *,
        base_url: str,
        max_connections: int,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # Imported here, not at module level: importing s3result must stay cheap (cold start).
        import httpcore

        self._httpcore = httpcore
        scheme, _, authority = base_url.partition("://")
        host, _, port = authority.rpartition(":") if authority.rsplit(":", 1)[-1].isdigit() else (authority, "", "")
        default_port = 443 if scheme == "https" else 80
        self._origin = httpcore.Origin(scheme.encode(), host.strip("[]").encode(), int(port) if port else default_port)
        self._ssl_context = ssl_context
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._pool_timeout = read_timeout
        self._extensions = {
            "timeout": {"connect": connect_timeout, "read": read_timeout, "write": read_timeout, "pool": read_timeout}
        }

    def _checkout(self) -> Any:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.has_expired() and conn.is_idle():
                    return conn
                conn.close()  # the server closed it, or it idled past keep-alive
        return self._httpcore.HTTPConnection(
            self._origin, ssl_context=self._ssl_context, keepalive_expiry=30.0, retries=0
        )

    def request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
        """Send on an idle pooled connection (or a new one); headers hold Host and Content-Length."""
        hc = self._httpcore
        if not self._slots.acquire(timeout=self._pool_timeout):
            raise ConnectError(f"no pooled connection came free in {self._pool_timeout:g}s; raise max_connections")
        conn = None
        try:
            # A plain try (not the context manager) on the hot path: it is cheaper.
            try:
                conn = self._checkout()
                url = hc.URL(scheme=self._origin.scheme, host=self._origin.host, port=self._origin.port, target=target)
                response = conn.handle_request(
                    hc.Request(method, url, headers=headers, content=body, extensions=self._extensions)
                )
                try:
                    data = response.read()
                finally:
                    response.close()
            except Exception as exc:
                self._raise_mapped(exc)
            if conn.is_idle():
                with self._lock:
                    self._idle.append(conn)
                conn = None
            return RawResponse(
                response.status, {k.lower().decode("latin-1"): v.decode("latin-1") for k, v in response.headers}, data
            )
        finally:
            if conn is not None:
                conn.close()
            self._slots.release()

    def _raise_mapped(self, exc: Exception) -> NoReturn:
        with self._map_errors():
            raise exc

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
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class HttpxTransport:
    """Adapts an ``httpx.BaseTransport``: the injectable seam for tests and custom setups."""

    def __init__(
        self,
        transport: httpx.BaseTransport,
        base_url: str = "http://127.0.0.1",
        *,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        import httpx

        self._httpx = httpx
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        # httpx.Client passes its timeouts to the transport this way; a bare transport needs them too.
        self._extensions = {"timeout": timeout.as_dict()} if timeout is not None else {}

    def request(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
        """Send through the wrapped transport and read the body."""
        hx = self._httpx
        url = hx.URL(self._base_url + target.decode("ascii"))
        req = hx.Request(method.decode(), url, headers=headers, content=body, extensions=self._extensions)
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
