"""When a waiting call polls: soon at first, then geometrically less often, up to ``interval``.

A result is usually ready within a few hundred milliseconds, or else it takes a while. Polling
every ``interval`` (Celery's 0.5 s) makes a 100 ms task cost up to half a second of latency;
polling every 25 ms makes a 5 s task cost 200 GETs. Doubling the wait from a small first delay
gets both: the first polls come while the task is likely to finish, and a long task costs
``interval`` per poll plus a handful, about ``log2(interval / first)``.

With first delay ``d`` and cap ``I``, the polls are at ``0, d, 3d, 7d, ... d(2^k - 1)`` until
the wait reaches ``I``, then every ``I``. Waiting ``D`` seconds costs
``1 + ceil(log2(D/d + 1))`` GETs while ``D <= d(2^K - 1)`` (``K = ceil(log2(I/d))``), and
``1 + K + ceil((D - d(2^K - 1)) / I)`` after that.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

__all__ = ["Deadline", "delays"]


def delays(first: float | None, interval: float) -> Iterator[float]:
    """The waits between polls: ``first``, doubling, capped at ``interval``; fixed if None."""
    interval = max(float(interval), 0.0)
    wait = interval if first is None else min(first, interval)
    while True:
        yield wait
        wait = min(wait * 2, interval)


class Deadline:
    """A caller's timeout as a point on the monotonic clock (None: no deadline)."""

    __slots__ = ("at",)

    def __init__(self, timeout: float | None) -> None:
        self.at = None if timeout is None else time.monotonic() + max(float(timeout), 0.0)

    def remaining(self) -> float | None:
        """Seconds left (0 or less once passed), or None without a deadline."""
        return None if self.at is None else self.at - time.monotonic()

    def passed(self) -> bool:
        """True once the deadline is reached."""
        return self.at is not None and time.monotonic() >= self.at

    def nap(self, wait: float) -> None:
        """Sleep ``wait``, never past the deadline."""
        left = self.remaining()
        pause = wait if left is None else min(wait, left)
        if pause > 0:
            time.sleep(pause)
