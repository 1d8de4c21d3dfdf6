"""The ETags this process got back for the states it wrote: the next state needs no read.

A task's later state (SUCCESS after STARTED, say) would otherwise cost three requests: a
``PUT If-None-Match: *`` refused with 412, a GET for the ETag, then ``PUT If-Match``. The
process that wrote the earlier state already holds that ETag, so it goes straight to
``PUT If-Match: <etag>``; a 412 there means someone else wrote since, and the caller falls
back to the read. Only ETags of states that may still change are kept: after a SUCCESS the
entry is dropped, so a late duplicate is always read first and never replaces it.

Bounded (least recently used first out), one lock for the threads of a process. The process's
memories, one per store, are a slot of the process state (``results.store.ETAGS``) that a forked
child gets empty: a child never acts on what its parent wrote.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["DEFAULT_SIZE", "EtagMemory"]

#: Tasks in flight per process are far fewer than this; a few thousand entries are ~0.5 MB.
DEFAULT_SIZE = 4096


class EtagMemory:
    """An LRU map of object key to the ETag this process last wrote there."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self.size = size
        self._items: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        """The ETag remembered for ``key``, or None."""
        with self._lock:
            etag = self._items.get(key)
            if etag is not None:
                self._items.move_to_end(key)
            return etag

    def put(self, key: str, etag: str) -> None:
        """Remember ``etag`` for ``key``; an empty ETag (a store that sent none) is forgotten."""
        with self._lock:
            if not etag:
                self._items.pop(key, None)
                return
            self._items[key] = etag
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop what is remembered for ``key``."""
        with self._lock:
            self._items.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
