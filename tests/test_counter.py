"""CasCounter's group commit, as pure logic over an in-memory conditional store.

The store below honours If-Match / If-None-Match like S3 and can be slowed down, so that
threads pile up behind a swap in flight. The real-store counterparts are in
tests/integration/test_conditional.py (16 threads x 100 on moto) and tests/e2e/test_chords.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from s3result.chords.counter import CasCounter
from s3result.errors import AlreadyExists, PreconditionFailed, ServerError
from s3result.s3.client import GetResult


class MemoryStore:
    """get_or_none/put with ETags and preconditions; counts swaps and can fail on demand."""

    def __init__(self, delay: float = 0.0) -> None:
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.lock = threading.Lock()
        self.delay = delay
        self.puts = 0
        self.fail_next_put: BaseException | None = None

    def get_or_none(self, key: str) -> GetResult | None:
        with self.lock:
            found = self.objects.get(key)
        return None if found is None else GetResult(found[0], found[1])

    def put(self, key: str, body: bytes, *, if_none_match: bool = False, if_match: str | None = None, **_: Any) -> str:
        time.sleep(self.delay)
        with self.lock:
            self.puts += 1
            if self.fail_next_put is not None:
                exc, self.fail_next_put = self.fail_next_put, None
                raise exc
            current = self.objects.get(key)
            if if_none_match and current is not None:
                raise AlreadyExists(status=412, code="PreconditionFailed", key=key, method="PUT")
            if if_match is not None and (current is None or current[1] != if_match):
                raise PreconditionFailed(status=412, code="PreconditionFailed", key=key, method="PUT")
            etag = f'"{uuid.uuid4().hex}"'
            self.objects[key] = (body, etag)
            return etag


def _count(store: MemoryStore, key: str) -> int:
    return int(store.objects[key][0].split(b"\n")[0])


def test_threads_of_one_process_commit_together_and_each_gets_its_own_value() -> None:
    store = MemoryStore(delay=0.01)
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        # A counter object per thread, as Celery gives each thread its own backend.
        counter = CasCounter(lambda: store, "scope")  # type: ignore[arg-type,return-value]
        for _ in range(25):
            value = counter.incr("k")
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=work) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 401))
    assert _count(store, "k") == 400
    assert store.puts < 200, f"{store.puts} swaps for 400 increments: no group commit"


def test_scopes_do_not_share_queues_or_counts() -> None:
    a, b = MemoryStore(), MemoryStore()
    ca = CasCounter(lambda: a, "store-a")  # type: ignore[arg-type,return-value]
    cb = CasCounter(lambda: b, "store-b")  # type: ignore[arg-type,return-value]
    assert [ca.incr("k"), cb.incr("k"), ca.incr("k")] == [1, 1, 2]


def test_a_failed_swap_fails_every_increment_in_its_batch_and_the_next_batch_goes_on() -> None:
    store = MemoryStore(delay=0.05)
    counter = CasCounter(lambda: store, "scope")  # type: ignore[arg-type,return-value]
    counter.incr("k")  # create it
    store.fail_next_put = ServerError(status=500, code="InternalError", key="k", method="PUT")
    outcomes: list[Any] = []
    lock = threading.Lock()

    def work() -> None:
        try:
            value: Any = counter.incr("k")
        except ServerError as exc:
            value = exc
        with lock:
            outcomes.append(value)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [o for o in outcomes if isinstance(o, ServerError)]
    values = sorted(o for o in outcomes if isinstance(o, int))
    assert errors, "the injected failure reached nobody"
    assert values == list(range(2, 2 + len(values)))  # no gap, no duplicate among the rest
    assert _count(store, "k") == 1 + len(values)
    assert counter.incr("k") == 2 + len(values)  # the queue is not wedged


def test_lost_reply_is_resolved_by_reading_the_token() -> None:
    store = MemoryStore()
    counter = CasCounter(lambda: store, "scope")  # type: ignore[arg-type,return-value]
    counter.incr("k")
    real_put = store.put

    def put_then_lose_reply(key: str, body: bytes, **kw: Any) -> str:
        real_put(key, body, **kw)
        store.put = real_put  # type: ignore[method-assign]
        raise PreconditionFailed(status=412, code="PreconditionFailed", key=key, method="PUT")

    store.put = put_then_lose_reply  # type: ignore[method-assign]
    assert counter.incr("k") == 2  # read back: the token is ours, so it counted once
    assert _count(store, "k") == 2


def test_deadline_gives_up_with_a_conflict() -> None:
    class AlwaysLoses(MemoryStore):
        def put(self, key: str, body: bytes, **kw: Any) -> str:
            raise PreconditionFailed(status=412, code="PreconditionFailed", key=key, method="PUT")

    counter = CasCounter(lambda: AlwaysLoses(), "scope", deadline_s=0.05)  # type: ignore[arg-type,return-value]
    with pytest.raises(Exception, match="still losing to concurrent writers"):
        counter.incr("k")
