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

import uuid
from collections.abc import Callable

from ..results.cas import Attempt, compare_and_swap
from ..s3.client import S3Client
from ..s3.request import PutMode
from .commit import group_commit

__all__ = ("CasCounter", "group_commit")


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
