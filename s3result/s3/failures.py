"""What a transport failure says: one line naming the cause and the fix, secrets never included.

Both transports (``transport``) map their library's exceptions to ours with these, so a refused
connection, an unknown host, a certificate the system does not trust or a read that timed out
reads the same whichever transport met it.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

from .errors import ConnectError, EndpointError

__all__ = ["connect_error", "describe", "no_answer"]


def describe(exc: BaseException) -> str:
    """The innermost cause's text: 'Connection refused' beats httpcore's wrapper."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    text = str(seen) or str(exc) or type(exc).__name__
    return text


def no_answer(cap: float | None, read_timeout: float | None, exc: BaseException) -> str:
    """Which limit ended a request the store did not answer: the caller's deadline, or read_timeout.

    A caller whose own ``get(timeout=2)`` ran out must not be told to raise read_timeout (30 s
    by default, never reached): the request was cut to the time left before that deadline.
    """
    if cap is not None and (read_timeout is None or cap < read_timeout):
        return f"no answer within the {cap:.3g} s left before the caller's deadline ({describe(exc)})"
    limit = f"read_timeout ({read_timeout:g} s)" if read_timeout is not None else "the timeout"
    return f"no answer within {limit} ({describe(exc)}); raise read_timeout if the store is slow"


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


def connect_error(exc: BaseException) -> ConnectError:
    """The error for a failed connect: ``EndpointError`` when no retry can succeed.

    A name that does not resolve and a TLS handshake that cannot agree (a certificate that does
    not verify, a plain-HTTP port) meet the same answer on every attempt: they are permanent,
    and their message says which setting to fix. A refused or reset connection may heal.
    """
    text = describe(exc)
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
