"""One wait's interest in some task ids, kept by the process's listener (``notifylistener``).

The listener adds each notified id to the waits on it; ``Watch.wait`` hands a wait what it was
told, holding repeats (and, for a chord body's wait, failures of any id) to one wake-up per
poll interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

__all__ = ["Watch"]


class _Listener(Protocol):
    """What a ``Watch`` asks of its listener (``notifylistener.Listener``)."""

    epoch: int

    def reliable(self) -> bool: ...

    def wait(self, w: Watch, timeout: float) -> tuple[set[str], bool]: ...

    def late(self, task_id: str) -> None: ...

    def unwatch(self, w: Watch) -> None: ...


class Watch:
    """One wait's interest in some task ids: notified ids collect here until taken.

    A notification for an id that woke this wait less than ``quiet`` seconds ago (the caller's
    poll interval) is held until then: a flood of repeated (or forged) notifications for one
    task costs at most one read per interval, never one read each. ``failures``: a FAILURE of
    any id wakes it too, at most once per ``quiet`` (a chord body's wait: its parents' check then
    reads the failed part at once, not at the next poll).
    """

    __slots__ = ("epoch", "failed", "failures", "held", "ids", "listener", "notified", "quiet", "seen")

    def __init__(self, listener: _Listener, ids: Iterable[str], quiet: float = 0.0, failures: bool = False) -> None:
        self.listener = listener
        self.ids = list(ids)
        self.notified: set[str] = set()
        self.seen: set[str] = set()
        self.held: dict[str, float] = {}
        self.quiet = max(float(quiet), 0.0)
        self.epoch = listener.epoch
        self.failures = failures
        #: A failure notified since this wait last woke for one (None: none), and when it may wake it.
        self.failed: float | None = None

    def reliable(self) -> bool:
        """True when polling may slow down: connected, subscribed, and notifications arrive."""
        return self.listener.reliable()

    def wait(self, timeout: float) -> tuple[set[str], bool]:
        """Block up to ``timeout``: (the ids notified since the last call, whether to read all again)."""
        return self.listener.wait(self, timeout)

    def found_by_poll(self, task_id: str) -> None:
        """A poll found ``task_id`` ready with no notification yet: unless it comes soon, stop
        trusting them (a late one is no lost one: polling fast again would only race it)."""
        if task_id not in self.seen and task_id not in self.notified:
            self.listener.late(task_id)

    def close(self) -> None:
        """The wait is over: its ids are no longer listened for."""
        self.listener.unwatch(self)

    def take(self, now: float) -> set[str]:
        """The notified ids not held (listener's lock held); each is then held for ``quiet``.
        A failure that may wake this wait now adds ``""`` (then held for ``quiet`` too)."""
        due = {i for i in self.notified if self.held.get(i, 0.0) <= now}
        if self.failed is not None and self.failed <= now:
            self.failed, self.held[""] = None, now + self.quiet
            due.add("")
        if due:
            self.notified -= due
            self.seen |= due
            for task_id in due:
                self.held[task_id] = now + self.quiet
        return due

    def next_release(self, default: float) -> float:
        """When the first held notification may wake this wait (listener's lock held)."""
        first = min((self.held.get(i, 0.0) for i in self.notified), default=default)
        return first if self.failed is None else min(first, self.failed)
