"""Read a chord header's results together when Celery reads them one by one.

``AsyncResult.get()`` of a chord's body checks the body's parents before it waits and again at
every poll (``_maybe_reraise_parent_error``), so that a failed part's own error reaches the
caller: Celery reads each header result in turn, one GET after another. Against Redis that is
a millisecond; against a store 20 ms away, 500 parts are 10 s a pass, and a failed part reaches
the caller that late. The producer knows the header's task ids (``apply_chord`` runs in its
process), so in the checks made while it waits (``waiter``: not the one ``get()`` makes before
waiting, nor any other read of a header result) the first read of one of them fetches the next
``WINDOW`` concurrently, and the reads that follow in the same check are answered from that batch. A result read as ready is
used once (Celery caches a success itself); one still pending answers for ``FRESH`` seconds, or
for longer in a large batch (a second per ``RATE`` ids, at most ``PATIENCE`` s), so a caller
waiting on a large chord reads its header at about the rate Celery's one-by-one check did over
a 20 ms store, not a pass every poll. When the body's own result turns out failed, the pending
answers are dropped (``forget_pending``): the check that picks the part's own error reads them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ReadAhead"]

#: How many ids one batch reads: the next ones of the header after the id asked for.
WINDOW = 256
#: How long a batch answers for at least: one pass of Celery's parent check, not the next poll's.
FRESH = 0.25
#: Ids per second a waiting caller reads of a large header, at most (one GET each).
RATE = 50
#: The longest a pending answer stands for a large header.
PATIENCE = 5.0
#: Headers remembered per backend (the producer's latest chords).
HEADERS = 64


class ReadAhead:
    """The header ids this process sent, and the latest batch read for them."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._headers: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # group id -> ids
        self._where: dict[str, tuple[str, int]] = {}  # task id -> (group id, position)
        self._batch: dict[str, tuple[float, Any]] = {}  # task id -> (good until, meta)

    def remember(self, group_id: str, task_ids: Sequence[str]) -> None:
        """A header this process is sending: its ids, in Celery's order."""
        ids = tuple(str(t) for t in task_ids)
        with self._lock:
            self._headers[group_id] = ids
            self._headers.move_to_end(group_id)
            for position, task_id in enumerate(ids):
                self._where[task_id] = (group_id, position)
            while len(self._headers) > HEADERS:
                _, old = self._headers.popitem(last=False)
                for task_id in old:
                    self._where.pop(task_id, None)
                    self._batch.pop(task_id, None)

    def take(self, task_id: str) -> Any | None:
        """The meta a batch read for ``task_id`` while it stands, else None (read the store)."""
        now = self._clock()
        with self._lock:
            entry = self._batch.get(task_id)
            if entry is None:
                return None
            if entry[0] < now or entry[1].get("status") != "PENDING":
                del self._batch[task_id]  # a ready one is read once: Celery keeps a success itself
            if entry[0] < now:
                return None
        return entry[1]

    def forget_pending(self) -> None:
        """Read every header result again at the next check (the body's own result is failed)."""
        with self._lock:
            self._batch.clear()

    def window(self, task_id: str, skip: Callable[[str], bool]) -> list[str]:
        """The ids one batch reads for ``task_id``: it and the next of its header, less ``skip``."""
        with self._lock:
            where = self._where.get(task_id)
            if where is None:
                return []
            ids = self._headers[where[0]]
        found = [task_id]
        for other in ids[where[1] + 1 :]:
            if len(found) >= WINDOW:
                break
            if not skip(other):
                found.append(other)
        return found

    def keep(self, metas: dict[str, Any]) -> None:
        """A batch just read: meta by task id."""
        until = self._clock() + min(max(FRESH, len(metas) / RATE), PATIENCE)
        with self._lock:
            for task_id, meta in metas.items():
                self._batch[task_id] = (until, meta)
