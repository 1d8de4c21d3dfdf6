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
import io
import socket
import ssl
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from .errors import BodyTooLarge, ConnectError, CorruptResponse, EndpointError, RequestTimeout, TransportError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ERROR_BODY_LIMIT",
    "HttpcoreTransport",
    "HttpxTransport",
    "RawResponse",
    "Transport",
    "make_ssl_context",
]


#: Bytes of an error response kept: S3 error documents are well under 1 KiB.
ERROR_BODY_LIMIT = 64 * 1024
#: Bodies above this (a wrong endpoint's download, say) are refused when no limit is given.
DEFAULT_BODY_LIMIT = 64 * 1024 * 1024


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


def _no_answer(cap: float | None, read_timeout: float | None, exc: BaseException) -> str:
    """Which limit ended a request the store did not answer: the caller's deadline, or read_timeout.

    A caller whose own ``get(timeout=2)`` ran out must not be told to raise read_timeout (30 s
    by default, never reached): the request was cut to the time left before that deadline.
    """
    if cap is not None and (read_timeout is None or cap < read_timeout):
        return f"no answer within the {cap:.3g} s left before the caller's deadline ({_describe(exc)})"
    limit = f"read_timeout ({read_timeout:g} s)" if read_timeout is not None else "the timeout"
    return f"no answer within {limit} ({_describe(exc)}); raise read_timeout if the store is slow"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


# getaddrinfo's "this name does not exist" answers; EAI_AGAIN ("try again") can heal.
_NO_SUCH_NAME = frozenset(
    getattr(socket, name)
    for name in ("EAI_NONAME", "EAI_NODATA", "EAI_FAIL", "EAI_ADDRFAMILY")
    if hasattr(socket, name)
)


# OpenSSL's verify codes whose fix is not a CA bundle (X509_V_ERR_*).
_CERT_EXPIRED, _HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH = 10, 62, 64


def _cert_fix(exc: ssl.SSLCertVerificationError) -> str:
    """What to change when the store's certificate does not verify: not always ``ca_bundle``."""
    code = getattr(exc, "verify_code", None)
    if code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
        return "the certificate does not name this host: put a host name it names in endpoint_url"
    if code == _CERT_EXPIRED:
        return "the store's certificate has expired: renew it on the store"
    return "set ca_bundle=/path/to/ca.pem for a private CA"


def _connect_error(exc: BaseException) -> ConnectError:
    """The error for a failed connect: ``EndpointError`` when no retry can succeed.

    A name that does not resolve and a TLS handshake that cannot agree (a certificate that does
    not verify, a plain-HTTP port) meet the same answer on every attempt: they are permanent,
    and their message says which setting to fix. A refused or reset connection may heal.
    """
    text = _describe(exc)
    low = text.lower()
    for inner in _chain(exc):
        if isinstance(inner, ssl.SSLCertVerificationError):
            return EndpointError(f"TLS verification failed ({text}); {_cert_fix(inner)}")
        if isinstance(inner, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError)):
            break  # the peer went away mid-handshake: it may come back
        if isinstance(inner, ssl.SSLError):
            reason = str(getattr(inner, "reason", "") or "")
            if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE") or "wrong version" in low:
                return EndpointError(
                    f"TLS handshake failed ({text}): the server speaks plain HTTP: use s3result+http:// "
                    "(or an http:// endpoint_url)"
                )
            return EndpointError(f"TLS handshake failed ({text}); check endpoint_url's scheme and port, and ca_bundle")
        if isinstance(inner, socket.gaierror) and inner.errno in _NO_SUCH_NAME:
            return EndpointError(f"cannot resolve the endpoint's host name ({text}); check endpoint_url")
    if "certificate" in low or "ssl" in low or "tls" in low:
        return ConnectError(f"TLS handshake interrupted ({text}); check endpoint_url and that the store is running")
    if (
        "name or service not known" in low
        or "nodename nor servname" in low
        or "getaddrinfo" in low
        or "name resolution" in low
    ):
        return ConnectError(f"cannot resolve the endpoint's host name ({text}); check endpoint_url")
    return ConnectError(f"cannot connect ({text}); check endpoint_url and that the store is running")


def _read_body(chunks: Iterable[bytes], status: int, length: str | None, limit: int) -> bytes:
    """The body, refused past ``limit`` bytes (``ERROR_BODY_LIMIT`` for an error status).

    Chunks go into one ``BytesIO`` whose ``getvalue()`` hands its buffer over without a copy,
    so a large result is held about once (plus a chunk), not as a list of chunks plus a join.
    An error body is cut at the cap: it only needs its Code and Message, which come first.
    """
    cap = limit if status < 300 else ERROR_BODY_LIMIT
    if status < 300 and length is not None and length.isdigit() and int(length) > cap:
        raise BodyTooLarge(
            f"the store announced a {int(length)}-byte body, over max_body_size={limit} (max_result_size in s3result's settings); "
            "raise it, or check endpoint_url and the key"
        )
    buf = io.BytesIO()
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > cap:
            if status >= 300:
                buf.write(chunk[: len(chunk) - (size - cap)])
                break
            raise BodyTooLarge(
                f"the body is over max_body_size={limit} bytes (max_result_size in s3result's settings); "
                "raise it, or check endpoint_url and the key"
            )
        buf.write(chunk)
    return buf.getvalue()


# zlib's window bits per content coding: 31 is the gzip container, 15 the zlib one (RFC 9110's
# "deflate"); a raw deflate stream, which some servers send as "deflate", is tried with -15.
_CODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 15}


def _decode_body(data: bytes, encoding: str, status: int, limit: int) -> bytes:
    """The body with its Content-Encoding undone: s3result asks for identity, but a proxy (or an
    object stored with Content-Encoding) may send gzip anyway, and httpcore does not decompress.

    Bounded like ``_read_body``: a decoded result past ``limit`` is ``BodyTooLarge``, and an
    error document is cut at ``ERROR_BODY_LIMIT``. A result that does not decompress, or whose
    stream ends early, is ``CorruptResponse`` (retried as a lost reply); an error body that does
    not is kept as it came (its status still classifies it).
    """
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip().lower() not in ("", "identity")]
    if not data or not codings:
        return data
    cap = limit if status < 300 else ERROR_BODY_LIMIT
    for coding in reversed(codings):  # the last coding listed was applied last
        wbits = _CODINGS.get(coding)
        if wbits is None:
            raise EndpointError(
                f"the store (or a proxy in front of it) answered with Content-Encoding: {coding}, although "
                "s3result asks for identity and decodes only gzip and deflate; stop the proxy from compressing"
            )
        try:
            try:
                inflater = zlib.decompressobj(wbits)
                out = inflater.decompress(data, cap + 1)
            except zlib.error:
                if coding != "deflate":
                    raise
                inflater = zlib.decompressobj(-15)
                out = inflater.decompress(data, cap + 1)
        except zlib.error as exc:
            if status >= 300:
                return data
            raise CorruptResponse(f"the {coding}-encoded body does not decompress ({exc})") from None
        if len(out) > cap:
            if status >= 300:
                return out[:cap]
            raise BodyTooLarge(
                f"the {coding}-encoded body decodes to over max_body_size={limit} bytes (max_result_size in s3result's settings); raise it, "
                "or check endpoint_url and the key"
            )
        if not inflater.eof and status < 300:
            raise CorruptResponse(f"the {coding}-encoded body ends early")
        data = out
    return data


# httpcore's socket writer re-slices what the kernel did not take (``buffer = buffer[n:]``):
# given 64 MiB at once, it copies the rest after every partial send. Chunks bound that copy.
_SEND_CHUNK = 1024 * 1024


def _chunks(body: bytes) -> Iterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(body), _SEND_CHUNK):
        yield bytes(view[start : start + _SEND_CHUNK])


def _header(headers: list[tuple[bytes, bytes]], name: bytes = b"content-length") -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


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
                content = body if len(body) <= _SEND_CHUNK else _chunks(body)
                response = conn.handle_request(
                    hc.Request(method, url, headers=headers, content=content, extensions=extensions)
                )
                try:
                    # A HEAD's Content-Length is the object's size, not a body to read.
                    length = None if method == b"HEAD" else _header(response.headers)
                    data = _read_body(response.stream, response.status, length, self._max_body)
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
                data = _decode_body(data, coding, response.status, self._max_body)
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
            raise ConnectError(f"timed out connecting ({_describe(exc)}); check endpoint_url and the network") from exc
        except (hc.ReadTimeout, hc.WriteTimeout) as exc:
            raise RequestTimeout(_no_answer(cap, self._read_timeout, exc)) from exc
        except hc.ConnectError as exc:
            raise _connect_error(exc) from exc
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
                data = _read_body(response.iter_bytes(), response.status_code, length, self._max_body)
            finally:
                response.close()
        except (hx.ConnectError, hx.ConnectTimeout, hx.ProxyError) as exc:
            if self._proxy is not None:  # the connection that failed is the one to the proxy, not to the store
                at, variable = self._proxy
                if isinstance(exc, hx.ProxyError):  # it answered: refused the tunnel (407, 403, 502)
                    raise ConnectError(
                        f"the proxy at {at} (from {variable}) refused to carry the request ({_describe(exc)}); "
                        f"check {variable} (its user and password) and the proxy's rules, or list the store's "
                        "host in NO_PROXY to go direct"
                    ) from exc
                raise ConnectError(
                    f"cannot reach the proxy at {at} (from {variable}) ({_describe(exc)}); fix {variable}, "
                    "or list the store's host in NO_PROXY to go direct"
                ) from exc
            if isinstance(exc, hx.ConnectError):
                raise _connect_error(exc) from exc
            if isinstance(exc, hx.ConnectTimeout):
                raise ConnectError(f"timed out ({_describe(exc)})") from exc
            raise TransportError(f"cannot send the request ({_describe(exc)})") from exc
        except hx.TimeoutException as exc:
            if isinstance(exc, (hx.ConnectTimeout, hx.PoolTimeout)):
                raise ConnectError(f"timed out ({_describe(exc)})") from exc
            raise RequestTimeout(_no_answer(timeout, self._read_timeout, exc)) from exc
        except (hx.ReadError, hx.WriteError, hx.RemoteProtocolError) as exc:
            raise RequestTimeout(f"connection lost mid-request ({_describe(exc)})") from exc
        except hx.TransportError as exc:
            raise TransportError(f"cannot send the request ({_describe(exc)})") from exc
        return RawResponse(response.status_code, {k.lower(): v for k, v in response.headers.items()}, data)

    def close(self) -> None:
        """Close the wrapped transport."""
        self._transport.close()
