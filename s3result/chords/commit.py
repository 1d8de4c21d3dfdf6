"""Group commit: the threads of one process that update one object take turns as one.

Every writer that loses a compare-and-swap race pays a GET and a PUT, so contention is what a
counter costs. Threads of one process that update the same key therefore commit together: while
one thread's update is in flight, the others queue, and the next update carries all of them.
The chord counters (``counter``, ``rootcounter``, ``tree``) use it; it knows nothing of S3.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from ..s3.process import PROCESS

__all__ = ("group_commit",)

T = TypeVar("T")
R = TypeVar("R")


class _Waiter:
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item: object) -> None:
        self.item = item
        self.result: object = None
        self.error: BaseException | None = None
        self.done = False


class _Slot:
    """The callers of one process queued on one name, and whether a commit is in flight."""

    __slots__ = ("busy", "cond", "pending")

    def __init__(self, lock: threading.Lock) -> None:
        self.cond = threading.Condition(lock)
        self.pending: list[_Waiter] = []
        self.busy = False


# Queues are per process, not per counter object: Celery gives every thread its own backend
# (``app.backend`` is thread-local), so only a process-wide table lets the threads meet.
_LOCK = PROCESS.slot("chords.commit.lock", threading.Lock, fork="renewed", why="guards the group commits")
_QUEUES = PROCESS.slot(
    "chords.commit.queues",
    dict[tuple[str, ...], _Slot],
    fork="emptied",
    why="commits in flight and their queues: their threads stayed in the parent",
)


def group_commit(name: tuple[str, ...], item: T, commit: Callable[[list[T]], Sequence[R]]) -> R:
    """Hand ``item`` to the next ``commit`` on ``name`` in this process, and return its result.

    While one thread's commit is in flight, the others queue; the first of them to wake leads
    the next commit for everyone queued so far. ``commit`` gets a batch's items in arrival
    order and returns one result per item; what it raises goes to every caller of the batch.
    """
    me = _Waiter(item)
    lock = _LOCK.get()
    queues = _QUEUES.get()
    with lock:
        slot = queues.get(name)
        if slot is None:
            slot = queues[name] = _Slot(lock)
        slot.pending.append(me)
        while slot.busy and not me.done:
            slot.cond.wait()
        batch: list[_Waiter] = []
        if not me.done:  # nobody is committing: lead the next commit
            batch, slot.pending, slot.busy = slot.pending, [], True
    if batch:
        error: BaseException | None = None
        results: Sequence[R] = ()
        try:
            results = commit([cast(T, w.item) for w in batch])
            if len(results) != len(batch):  # pragma: no cover - a commit's contract
                raise AssertionError(f"{len(results)} results for a batch of {len(batch)}")
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            error = exc
        with lock:
            for i, waiter in enumerate(batch):
                waiter.done = True
                if error is not None:
                    waiter.error = error
                else:
                    waiter.result = results[i]
            slot.busy = False
            # Wake the batch (their results are set) and anyone queued since: one of those
            # leads the next commit. A slot nobody waits on is dropped.
            slot.cond.notify_all()
            if not slot.pending and queues.get(name) is slot:
                del queues[name]
    if me.error is not None:
        raise me.error
    return cast(R, me.result)
