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
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from .bodies import DEFAULT_BODY_LIMIT, SEND_CHUNK, content_length, decode_body, read_body, send_chunks
from .errors import BodyTooLarge, ConnectError, RequestTimeout, TransportError
from .failures import connect_error, describe, no_answer
from .response import RawResponse, Transport

if TYPE_CHECKING:
    import httpx

__all__ = [
    "HttpcoreTransport",
    "HttpxTransport",
    "RawResponse",
    "Transport",
    "make_ssl_context",
    "one_shot",
]


def make_ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """Verify with ``ca_bundle``, else AWS_CA_BUNDLE, SSL_CERT_FILE/DIR, else certifi (see ``network``)."""
    from .network import ssl_context

    return ssl_context(ca_bundle)


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
        max_body: int = DEFAULT_BODY_LIMIT,
    ) -> None:
        # Imported here, not at module level: importing s3result must stay cheap (cold start).
        import httpcore

        from .wholedeadline import DeadlineBackend, request_deadline

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
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_body = max_body
        self._max_connections = max_connections
        #: Answers read so far: a caller that waited for a connection tells a silent store from a small pool.
        self._answered = 0
        self._extensions = self._timeouts(None)
        self._network = DeadlineBackend()
        self._request_deadline = request_deadline

    def _timeouts(self, cap: float | None) -> dict[str, Any]:
        connect, read = self._connect_timeout, self._read_timeout
        if cap is not None:
            connect, read = min(connect, cap), min(read, cap)
        return {"timeout": {"connect": connect, "read": read, "write": read, "pool": read}}

    def _checkout(self) -> Any:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.has_expired() and conn.is_idle():
                    return conn
                conn.close()  # the server closed it, or it idled past keep-alive
        return self._httpcore.HTTPConnection(
            self._origin,
            ssl_context=self._ssl_context,
            keepalive_expiry=30.0,
            retries=0,
            network_backend=self._network,
        )

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send on an idle pooled connection (or a new one); headers hold Host and Content-Length."""
        hc = self._httpcore
        # ``timeout`` bounds the whole request, not only each socket wait: see wholedeadline.
        whole = self._request_deadline(timeout)
        extensions = self._extensions if timeout is None else self._timeouts(timeout)
        pool_timeout = self._pool_timeout if timeout is None else min(self._pool_timeout, timeout)
        answered = self._answered
        if not self._slots.acquire(timeout=pool_timeout):
            raise ConnectError(self._pool_full(pool_timeout, answered))
        conn = None
        try:
            # A plain try (not the context manager) on the hot path: it is cheaper.
            try:
                whole.__enter__()
                conn = self._checkout()
                url = hc.URL(scheme=self._origin.scheme, host=self._origin.host, port=self._origin.port, target=target)
                content = body if len(body) <= SEND_CHUNK else send_chunks(body)
                response = conn.handle_request(
                    hc.Request(method, url, headers=headers, content=content, extensions=extensions)
                )
                try:
                    # A HEAD's Content-Length is the object's size, not a body to read.
                    length = None if method == b"HEAD" else content_length(response.headers)
                    data = read_body(response.stream, response.status, length, self._max_body)
                finally:
                    response.close()
            except BodyTooLarge:
                raise
            except Exception as exc:
                self._raise_mapped(exc, timeout)
            finally:
                whole.__exit__()
            self._answered += 1
            if conn.is_idle():
                with self._lock:
                    self._idle.append(conn)
                conn = None
            answer_headers = {k.lower().decode("latin-1"): v.decode("latin-1") for k, v in response.headers}
            coding = answer_headers.get("content-encoding")
            if coding is not None and method != b"HEAD":
                data = decode_body(data, coding, response.status, self._max_body)
            return RawResponse(response.status, answer_headers, data)
        finally:
            if conn is not None:
                conn.close()
            self._slots.release()

    def _pool_full(self, waited: float, answered: int) -> str:
        """Why no connection came free: a store that answered nothing meanwhile, or too small a pool."""
        if self._answered == answered:
            return (
                f"no pooled connection came free in {waited:g}s: all {self._max_connections} are waiting on the "
                "store, which answered none of them meanwhile; check that the store is up and answering"
            )
        return (
            f"no pooled connection came free in {waited:g}s: all {self._max_connections} stayed busy; "
            "raise max_connections, or lower the pool's concurrency"
        )

    def _raise_mapped(self, exc: Exception, cap: float | None = None) -> NoReturn:
        with self._map_errors(cap):
            raise exc

    @contextlib.contextmanager
    def _map_errors(self, cap: float | None = None) -> Iterator[None]:
        hc = self._httpcore
        try:
            yield
        except (hc.ConnectTimeout, hc.PoolTimeout) as exc:
            raise ConnectError(f"timed out connecting ({describe(exc)}); check endpoint_url and the network") from exc
        except (hc.ReadTimeout, hc.WriteTimeout) as exc:
            raise RequestTimeout(no_answer(cap, self._read_timeout, exc)) from exc
        except hc.ConnectError as exc:
            raise connect_error(exc) from exc
        except (hc.ReadError, hc.WriteError, hc.RemoteProtocolError) as exc:
            raise RequestTimeout(f"connection lost mid-request ({describe(exc)})") from exc
        except (hc.LocalProtocolError, hc.UnsupportedProtocol) as exc:
            raise TransportError(f"cannot send the request ({describe(exc)})") from exc

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
        max_body: int = DEFAULT_BODY_LIMIT,
        proxy: tuple[str, str] | None = None,
    ) -> None:
        import httpx

        self._httpx = httpx
        self._transport = transport
        #: (HOST:PORT, the variable that named it) when ``transport`` goes through a proxy; never its password.
        self._proxy = proxy
        self._base_url = base_url.rstrip("/")
        self._max_body = max_body
        # httpx.Client passes its timeouts to the transport this way; a bare transport needs them too.
        self._extensions = {"timeout": timeout.as_dict()} if timeout is not None else {}
        self._read_timeout = timeout.read if timeout is not None else None

    def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        timeout: float | None = None,
    ) -> RawResponse:
        """Send through the wrapped transport and read the body (up to the limit)."""
        hx = self._httpx
        url = hx.URL(self._base_url + target.decode("ascii"))
        extensions = (
            self._extensions
            if timeout is None
            else {"timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout)}
        )
        req = hx.Request(method.decode(), url, headers=headers, content=body, extensions=extensions)
        try:
            response = self._transport.handle_request(req)
            try:
                length = None if method == b"HEAD" else response.headers.get("content-length")
                data = read_body(response.iter_bytes(), response.status_code, length, self._max_body)
            finally:
                response.close()
        except (hx.ConnectError, hx.ConnectTimeout, hx.ProxyError) as exc:
            if self._proxy is not None:  # the connection that failed is the one to the proxy, not to the store
                at, variable = self._proxy
                if isinstance(exc, hx.ProxyError):  # it answered: refused the tunnel (407, 403, 502)
                    raise ConnectError(
                        f"the proxy at {at} (from {variable}) refused to carry the request ({describe(exc)}); "
                        f"check {variable} (its user and password) and the proxy's rules, or list the store's "
                        "host in NO_PROXY to go direct"
                    ) from exc
                raise ConnectError(
                    f"cannot reach the proxy at {at} (from {variable}) ({describe(exc)}); fix {variable}, "
                    "or list the store's host in NO_PROXY to go direct"
                ) from exc
            if isinstance(exc, hx.ConnectError):
                raise connect_error(exc) from exc
            if isinstance(exc, hx.ConnectTimeout):
                raise ConnectError(f"timed out ({describe(exc)})") from exc
            raise TransportError(f"cannot send the request ({describe(exc)})") from exc
        except hx.TimeoutException as exc:
            if isinstance(exc, (hx.ConnectTimeout, hx.PoolTimeout)):
                raise ConnectError(f"timed out ({describe(exc)})") from exc
            raise RequestTimeout(no_answer(timeout, self._read_timeout, exc)) from exc
        except (hx.ReadError, hx.WriteError, hx.RemoteProtocolError) as exc:
            raise RequestTimeout(f"connection lost mid-request ({describe(exc)})") from exc
        except hx.TransportError as exc:
            raise TransportError(f"cannot send the request ({describe(exc)})") from exc
        return RawResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()}, data)

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()


#: The largest credentials document read: they are a few KiB.
_MAX_ANSWER = 1024 * 1024


def one_shot(
    method: str, url: str, *, headers: Mapping[str, str] | None = None, body: bytes | None = None, timeout: float
) -> tuple[int, bytes]:
    """One request over a one-connection transport (credentials endpoints); raises ``TransportError``."""
    parts = urlsplit(url)
    # AWS_CA_BUNDLE, SSL_CERT_FILE, certifi: as botocore would (STS, a FULL_URI over TLS).
    context = make_ssl_context(None) if parts.scheme == "https" else None
    transport = HttpcoreTransport(
        base_url=f"{parts.scheme}://{parts.netloc}",
        max_connections=1,
        connect_timeout=timeout,
        read_timeout=timeout,
        ssl_context=context,
        max_body=_MAX_ANSWER,
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    wire = [(b"Host", parts.netloc.encode()), (b"Accept-Encoding", b"identity")]
    wire += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    payload = body or b""
    if body is not None or method in ("PUT", "POST"):
        wire.append((b"Content-Length", str(len(payload)).encode()))
    try:
        resp = transport.request(method.encode(), target.encode("ascii"), wire, payload)
    finally:
        transport.close()
    return resp.status, resp.body
