"""A counter object on S3, advanced by compare-and-swap, with group commit per process.

The counter is one object whose body is ``count`` and a token naming the write that set it:
read it with its ETag, write ``count + n`` with ``PUT If-Match``, create it with
``If-None-Match: *``. When a conditional PUT's reply is lost and its retry fails the
precondition, reading the object tells whether our write landed (the token is ours), so a
lost reply never counts twice or not at all.

Every writer that loses a race pays a GET and a PUT, so contention is what a counter costs.
Threads of one process that count on the same key therefore commit together: while one
thread's compare-and-swap is in flight, the others queue, and the next swap adds all of
them at once. Each increment still gets its own value (the batch ``c+1 .. c+n`` is handed
out in arrival order), so exactly one caller ever sees any given count, and the chord part
that sees the chord's size is the one that fires the body. With Celery's thread, gevent or
eventlet pools, 16 threads contend like one; prefork processes contend as before.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from typing import TypeVar, cast

from ..results.cas import Attempt, compare_and_swap
from ..s3.client import S3Client
from ..s3.forks import on_fork_in_child
from ..s3.request import PutMode

__all__ = ("CasCounter", "group_commit")

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
_lock = threading.Lock()
_slots: dict[tuple[str, ...], _Slot] = {}


def _after_fork_in_child() -> None:
    # A fork may copy the lock held, or a commit in flight whose threads did not come along.
    global _lock
    _lock = threading.Lock()
    _slots.clear()


on_fork_in_child(_after_fork_in_child)


def group_commit(name: tuple[str, ...], item: T, commit: Callable[[list[T]], Sequence[R]]) -> R:
    """Hand ``item`` to the next ``commit`` on ``name`` in this process, and return its result.

    While one thread's commit is in flight, the others queue; the first of them to wake leads
    the next commit for everyone queued so far. ``commit`` gets a batch's items in arrival
    order and returns one result per item; what it raises goes to every caller of the batch.
    """
    me = _Waiter(item)
    lock = _lock
    with lock:
        slot = _slots.get(name)
        if slot is None:
            slot = _slots[name] = _Slot(lock)
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
            if not slot.pending and _slots.get(name) is slot:
                del _slots[name]
    if me.error is not None:
        raise me.error
    return cast(R, me.result)


class CasCounter:
    """Counters on S3 keys; ``incr(key)`` returns a value no other caller gets.

    ``scope`` names the store and bucket; counters with the same scope and key, anywhere in
    the process, share one queue.
    """

    def __init__(self, client: Callable[[], S3Client], scope: str, *, deadline_s: float = 120.0) -> None:
        self._client = client
        self._scope = scope
        self.deadline_s = deadline_s

    def incr(self, key: str) -> int:
        """Add one to the counter at ``key`` and return the count this increment made."""

        def commit(batch: list[None]) -> list[int]:
            new = self.add(key, len(batch))
            return [new - len(batch) + 1 + i for i in range(len(batch))]

        return group_commit(("incr", self._scope, key), None, commit)

    def add(self, key: str, n: int) -> int:
        """Add ``n`` to the counter by compare-and-swap; return the new count."""
        client = self._client()
        token = uuid.uuid4().hex

        def attempt(cas: Attempt) -> int:
            current = client.get_or_none(key)
            cas.read(None if current is None else current.etag)
            count = 0
            if current is not None:
                head, _, writer = current.body.decode("ascii", "replace").partition("\n")
                count = int(head or 0)
                if writer == token:
                    return count  # our previous attempt landed; its reply was lost
            new = f"{count + n}\n{token}".encode()
            if current is None:
                client.put(key, new, mode=PutMode.CREATE, content_type="text/plain")
            else:
                client.put(key, new, mode=PutMode.update(current.etag), content_type="text/plain")
            return count + n

        return compare_and_swap(key, attempt, deadline_s=self.deadline_s, store_errors=False)
