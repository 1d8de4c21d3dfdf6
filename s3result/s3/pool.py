"""The client's per-process resources: its connection pool to the endpoint, and its reader threads.

Made lazily and keyed by PID, so a prefork child never writes on its parent's sockets; shared
by every thread of the process. After a fork the parent's pool is abandoned, never closed:
closing would shut sockets the parent is still using. A region switch replaces the pool (the
old one is closed once its requests finish) and keeps the reader threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from .process import renew_locks_after_fork
from .reads import new_executor
from .response import Transport

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

__all__ = ["ProcessPool", "Slot"]


class Slot:
    """One process's resources: the pool to one endpoint and the executor for concurrent reads."""

    __slots__ = ("base", "executor", "pid", "transport")

    def __init__(self, pid: int, base: str, transport: Transport, executor: ThreadPoolExecutor | None = None) -> None:
        self.pid = pid
        self.base = base
        self.transport = transport
        self.executor = executor


class ProcessPool:
    """The current process's slot for the current endpoint, made by ``factory`` (a base URL -> its ``Transport``)."""

    def __init__(self, factory: Callable[[str], Transport], base: str) -> None:
        #: Makes a transport to a base URL (tests swap it before the first request).
        self.factory = factory
        #: The endpoint requests go to now (after any region switch), without the key.
        self.base = base
        #: The current slot; None before the first request and after ``close``.
        self.slot: Slot | None = None
        self._lock = threading.Lock()
        renew_locks_after_fork(self, "_lock")

    def get(self) -> Slot:
        """This process's slot for the current endpoint."""
        pid = os.getpid()
        slot = self.slot
        if slot is not None and slot.pid == pid and slot.base is self.base:
            return slot
        with self._lock:
            slot = self.slot
            if slot is None or slot.pid != pid or slot.base is not self.base:  # pragma: no branch - a race
                slot = Slot(pid, self.base, self.factory(self.base))
                self.slot = slot
            return slot

    def switch(self, base: str) -> None:
        """Send to ``base`` from now on; this process's pool to the old one is replaced and closed."""
        stale: Transport | None = None
        with self._lock:
            slot = self.slot
            if slot is not None and slot.pid == os.getpid() and slot.base != base:
                # The executor does not depend on the endpoint: the new slot keeps it.
                stale = slot.transport
                self.slot = Slot(slot.pid, base, self.factory(base), slot.executor)
            self.base = self.slot.base if self.slot is not None and self.slot.base == base else base
        if stale is not None:
            stale.close()  # requests in flight on it finish; its idle connections go now

    def executor(self, max_connections: int) -> ThreadPoolExecutor:
        """This process's reader threads, made on the first group read."""
        slot = self.get()
        if slot.executor is None:
            with self._lock:
                if slot.executor is None:  # pragma: no branch - else: another thread won the race
                    slot.executor = new_executor(max_connections)
        return slot.executor

    def close(self) -> None:
        """Close this process's pool and executor; the next request opens new ones."""
        with self._lock:
            slot, self.slot = self.slot, None
        if slot is not None and slot.pid == os.getpid():
            if slot.executor is not None:
                slot.executor.shutdown(wait=False)
            slot.transport.close()
