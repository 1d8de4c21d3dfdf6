"""Concurrent reads: many keys fetched together over the pool, each answer or error in its place.

A join polls many keys at once; one thread per GET (up to the pool's size) keeps a round as
long as its slowest read, not the sum of them. The client hands in the one-key read and its
process's executor; this module decides which reads are still worth sending.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .errors import RequestTimeout
from .replies import GetResult

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["MIN_ATTEMPT_S", "new_executor", "read_each"]

#: The shortest wait an attempt gets under a deadline: enough for a loopback or LAN round trip.
MIN_ATTEMPT_S = 0.1


def read_each(
    read: Callable[[str], GetResult | None],
    keys: Sequence[str],
    *,
    deadline: float | None,
    executor: Callable[[], ThreadPoolExecutor],
) -> list[GetResult | None | Exception]:
    """``read`` every key (concurrently when more than one), each error in its place.

    Under a deadline, a GET whose turn in the pool comes after it (and after the round's first
    ``MIN_ATTEMPT_S``) is not sent: 1,000 keys would otherwise each get a fresh short try,
    seconds past the caller's timeout.
    """
    last_send = None if deadline is None else max(deadline, time.monotonic() + MIN_ATTEMPT_S)

    def one(key: str) -> GetResult | None | Exception:
        if last_send is not None and time.monotonic() >= last_send:
            return RequestTimeout(f"S3 GET {key!r}: not sent, the deadline passed", method="GET", key=key)
        try:
            return read(key)
        except Exception as exc:  # noqa: BLE001 - handed back in its place
            return exc

    if len(keys) <= 1:
        return [one(k) for k in keys]
    return list(executor().map(one, keys))


def new_executor(max_connections: int) -> ThreadPoolExecutor:
    """The process's reader threads: as many as the pool has connections, at most 16."""
    # Imported here: only group reads need it, and cold start should not pay.
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=min(max_connections, 16), thread_name_prefix="s3result")
