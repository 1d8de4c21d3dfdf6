"""Read a chord header's results together when Celery reads them one by one.

``AsyncResult.get()`` of a chord's body checks the body's parents before it waits and again at
every poll (``_maybe_reraise_parent_error``), so that a failed part's own error reaches the
caller: Celery reads each header result in turn, one GET after another. Against Redis that is
a millisecond; against a store 20 ms away, 500 parts are 10 s a pass, and a failed part reaches
the caller that late. The producer knows the header's task ids (``apply_chord`` runs in its
process), so in the checks made while it waits (``waiter``) the first read of one of them
fetches the next ``WINDOW`` concurrently, and the reads that follow in the same check are
answered from that batch. A result read as ready is used once (Celery caches a success itself); one still pending answers for ``FRESH`` seconds, or
for longer in a large batch (a second per ``RATE`` ids, at most ``PATIENCE`` s), so a caller
waiting on a large chord reads its header at about the rate Celery's one-by-one check did over
a 20 ms store, not a pass every poll. When the body's own result turns out failed, the pending
answers are dropped (``forget_pending``): the check that picks the part's own error reads them.

Celery's check before ``get()`` waits (and any other read outside a wait) is a pass over the
header in its order, and is served by ``in_pass``, apart from the checks above. A read of a
header id right after the one before it, by the same thread, continues a pass: it reads ahead
concurrently as many ids as the pass has read so far (up to ``AHEAD``), so a pass over 500
parts is a dozen round trips, not 500, and a pass cut short reads at most twice what it used.
Those answers serve that pass only: each once, to the read of the id that comes next, within
``FRESH`` seconds of the pass's previous read and ``STALEST`` of being read (a pass that goes on
steadily on a loaded machine keeps its batch). A read out of order (a loop on one part's ``ready()``, a later look at another
part) starts a new pass with a read of its own, as does a failed answer (Celery's check raises
there and reads nothing more). So a read outside a wait never gets an answer older than the pass
it belongs to, and a loop on one part reads that part alone. The pass's pending answers also
stand for the checks made while waiting, as a batch of theirs would.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from celery import states

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
#: The oldest answer a pass may use: each answer read ahead serves within ``FRESH`` of the pass's
#: previous read (a pass that goes on steadily keeps its batch), and never past this age. Celery's
#: own one-by-one pass over 100 parts of a store 20 ms away reads its last part 2 s after its first.
STALEST = 2.0
#: The most a pass outside a wait reads ahead at once: it goes on when its next answer is in,
#: so a part that failed a moment ago is not kept behind hundreds of reads.
AHEAD = 64

#: A result's meta by task id, as the backend decodes it.
Metas = dict[str, Any]


class _Pass:
    """One thread's pass over a header, outside a wait: where it is and what it read ahead."""

    def __init__(self, group_id: str, position: int) -> None:
        self.group_id = group_id
        self.position = position
        self.ahead: Metas = {}
        self.until = 0.0
        self.read_at = 0.0
        self.reads = 1


class ReadAhead:
    """The header ids this process sent, and the latest batch read for them."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._headers: OrderedDict[str, tuple[str, ...]] = OrderedDict()  # group id -> ids
        self._where: dict[str, tuple[str, int]] = {}  # task id -> (group id, position)
        self._batch: dict[str, tuple[float, Any]] = {}  # task id -> (good until, meta)
        self._passes = threading.local()  # this thread's pass outside a wait (``_Pass``)

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

    def keep(self, metas: dict[str, Any], header: int = 0) -> None:
        """A batch just read: meta by task id (``header``: its header's size, when larger)."""
        until = self._clock() + min(max(FRESH, max(len(metas), header) / RATE), PATIENCE)
        with self._lock:
            for task_id, meta in metas.items():
                self._batch[task_id] = (until, meta)

    def in_pass(
        self, task_id: str, one: Callable[[str], Any], many: Callable[[list[str]], Metas], skip: Callable[[str], bool]
    ) -> Any:
        """A read outside a wait: ``one(task_id)`` (the store), unless it continues a pass over a
        header this process sent (see the module's docstring), then its answer read ahead."""
        with self._lock:
            where = self._where.get(task_id)
            ids = self._headers[where[0]] if where is not None else ()
        if where is None:
            return one(task_id)
        group_id, position = where
        current: _Pass | None = getattr(self._passes, "now", None)
        if current is None or current.group_id != group_id or self._next(ids, current.position, skip) != position:
            self._passes.now = _Pass(group_id, position)  # a new pass: its first read alone
            meta = one(task_id)
            self._stand({task_id: meta}, len(ids))
            return meta
        current.position = position
        meta = current.ahead.pop(task_id, None)
        now = self._clock()
        if meta is None or now > current.until:
            later = (i for i in itertools.islice(ids, position + 1, None) if not skip(i))
            wanted = [task_id, *itertools.islice(later, min(current.reads, AHEAD) - 1)]
            current.ahead = many(wanted)
            current.read_at = now = self._clock()
            self._stand(current.ahead, len(ids))
            meta = current.ahead.pop(task_id, None)
            if meta is None:  # its read failed: the store's own answer (or error), with retries
                meta = one(task_id)
        current.until = min(now + FRESH, current.read_at + STALEST)  # a steady pass keeps its batch
        current.reads += 1
        if meta.get("status") in states.PROPAGATE_STATES:
            current.ahead.clear()  # Celery's check raises here: nothing read ahead outlives it
        return meta

    def _stand(self, metas: Metas, header: int) -> None:
        """A pass's pending answers stand for the checks made while waiting, as their batch would."""
        pending = {i: m for i, m in metas.items() if m.get("status") == states.PENDING}
        if pending:
            self.keep(pending, header)

    @staticmethod
    def _next(ids: Sequence[str], position: int, skip: Callable[[str], bool]) -> int:
        """The position of the id after ``position`` that a pass reads (``skip``: known already)."""
        position += 1
        while position < len(ids) and skip(ids[position]):
            position += 1
        return position
