"""A deadline for a whole request, not for each socket wait (httpcore's timeouts are per wait).

httpcore bounds every single ``recv``/``send`` by the request's timeout. A store (or a proxy)
that trickles its answer, one byte every few hundred milliseconds, never trips a per-wait
timeout, so ``get(timeout=1)`` could wait for minutes. This network backend wraps httpcore's
sockets and caps each wait by the time left before the current thread's request deadline, so
the deadline cuts the whole request: connect, TLS handshake, headers and body.

Imported by the transport when it is built (httpcore is imported lazily, to keep
``import s3result`` cheap).
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterable
from typing import Any

import httpcore

__all__ = ["DeadlineBackend", "request_deadline"]

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
        return _Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _Stream(self._inner.connect_unix_socket(path, _cap(timeout, httpcore.ConnectTimeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
