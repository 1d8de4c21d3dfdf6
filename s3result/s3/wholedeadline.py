"""A deadline for a whole request, not for each socket wait (httpcore's timeouts are per wait).

httpcore bounds every single ``recv``/``send`` by the request's timeout. A store (or a proxy)
that trickles its answer, one byte every few hundred milliseconds, never trips a per-wait
timeout, so ``get(timeout=1)`` could wait for minutes. This network backend wraps httpcore's
sockets and caps each wait by the time left before the current thread's request deadline, so
the deadline cuts the whole request: host-name lookup, connect, TLS handshake, headers and body.
The system resolver cannot be interrupted, so under a deadline a lookup runs in a helper
thread that is abandoned (it ends when the resolver gives up) if the deadline passes first.

Imported by the transport when it is built (httpcore is imported lazily, to keep
``import s3result`` cheap).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore

__all__ = ["DeadlineBackend", "request_deadline"]

# Per thread, by nature: the deadline of the request this thread is sending (none between requests).
_local = threading.local()


class request_deadline:  # noqa: N801 - used like a function: ``with request_deadline(t):``
    """Within the block, this thread's socket waits end by ``time.monotonic() + timeout``."""

    __slots__ = ("_at", "_saved")

    def __init__(self, timeout: float | None) -> None:
        self._at = None if timeout is None else time.monotonic() + timeout
        self._saved: float | None = None

    def __enter__(self) -> None:
        self._saved = getattr(_local, "at", None)
        _local.at = self._at

    def __exit__(self, *_: object) -> None:
        _local.at = self._saved


def _cap(timeout: float | None, error: type[Exception]) -> float | None:
    at: float | None = getattr(_local, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's deadline passed")
    return left if timeout is None else min(timeout, left)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int, at: float) -> list[str]:
    """The host's addresses, or ``ConnectTimeout`` once the deadline passes, whichever is first."""
    box: list[Any] = []

    def lookup() -> None:
        try:
            box.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except Exception as exc:  # noqa: BLE001 - handed to the caller
            box.append(exc)

    helper = threading.Thread(target=lookup, name="s3result-resolve", daemon=True)
    helper.start()
    helper.join(max(at - time.monotonic(), 0.0))
    if not box:
        raise httpcore.ConnectTimeout(f"looking up {host!r} took longer than the time left")
    found = box[0]
    if isinstance(found, Exception):
        raise httpcore.ConnectError(str(found)) from found
    addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
    if not addresses:
        raise httpcore.ConnectError(f"{host!r} has no address")
    return addresses


class _Stream(httpcore.NetworkStream):
    """httpcore's socket stream, each wait capped by the request deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _cap(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's sync backend whose streams honour ``request_deadline``."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = _cap(timeout, httpcore.ConnectTimeout)
        at: float | None = getattr(_local, "at", None)
        if at is None or _is_address(host):
            return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))
        failure: Exception | None = None
        for address in _resolve(host, port, at):
            try:
                stream = self._inner.connect_tcp(
                    address, port, _cap(timeout, httpcore.ConnectTimeout), local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                failure = exc  # the next address may answer, as socket.create_connection does
                continue
            return _Stream(stream)
        assert failure is not None  # _resolve returns at least one address
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _cap(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
