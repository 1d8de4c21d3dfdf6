"""ChordCounter as pure logic over the in-memory conditional store of test_counter.

The same behaviour against real stores and workers: tests/integration/test_chord_cases.py,
tests/e2e/test_chords.py, tests/e2e/test_chord_shapes.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from s3result.chords.rootcounter import ChordCounter, CounterState
from s3result.errors import RequestTimeout

from .test_counter import MemoryStore


def _counter(store: MemoryStore, **kw: Any) -> ChordCounter:
    return ChordCounter(lambda: store, "scope", **kw)  # type: ignore[arg-type,return-value]


def _made(store: MemoryStore, key: str, size: int) -> None:
    counter = _counter(store)
    counter.create(key)
    assert counter.set_size(key, size)


def test_threads_commit_together_and_exactly_one_part_fires() -> None:
    store = MemoryStore(delay=0.01)
    _made(store, "k", 64)
    puts_before = store.puts
    outcomes: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        out = _counter(store).count("k", f"t{i}:{i}", precreated=True)
        with lock:
            outcomes.append(out)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(outcomes) == {"fire": 1, "wait": 63}
    assert store.puts - puts_before < 64 / 2, "threads of a process should share swaps"
    state = CounterState.load(store.objects["k"][0])
    assert len(state.parts) == 64 and state.done is not None


def test_a_part_counted_twice_counts_once() -> None:
    store = MemoryStore()
    _made(store, "k", 2)
    counter = _counter(store)
    assert counter.count("k", "a:0", precreated=True) == "wait"
    assert counter.count("k", "a:0", precreated=True) == "wait"
    assert counter.count("k", "b:1", precreated=True) == "fire"


def test_lost_reply_of_the_completing_write_still_fires_once() -> None:
    store = MemoryStore()
    _made(store, "k", 2)
    counter = _counter(store)
    assert counter.count("k", "a:0", precreated=True) == "wait"
    real_put = store.put

    def put_then_lose(key: str, body: bytes, **kw: Any) -> str:
        real_put(key, body, **kw)
        raise RequestTimeout("reply lost")

    store.put = put_then_lose  # type: ignore[method-assign]
    assert counter.count("k", "b:1", precreated=True) == "fire"
    store.put = real_put  # type: ignore[method-assign]
    assert len(CounterState.load(store.objects["k"][0]).parts) == 2


def test_missing_counter_means_the_chord_finished() -> None:
    store = MemoryStore()
    assert _counter(store).count("gone", "a:0", precreated=True) == "late"
    assert "gone" not in store.objects


def test_a_failed_chord_never_fires() -> None:
    store = MemoryStore()
    _made(store, "k", 1)
    assert _counter(store).fail("k", "boom")
    assert _counter(store).count("k", "a:0", precreated=True) == "failed"


def test_a_completed_chord_cannot_be_failed() -> None:
    store = MemoryStore()
    _made(store, "k", 1)
    assert _counter(store).count("k", "a:0", precreated=True) == "fire"
    assert not _counter(store).fail("k", "too late")


def test_redelivery_of_the_completing_part_takes_over_after_the_lease() -> None:
    store = MemoryStore()
    _made(store, "k", 1)
    assert _counter(store).count("k", "a:0", precreated=True) == "fire"  # then "dies"
    again = _counter(store, lease_s=0.2)
    assert again.count("k", "a:0", precreated=True) == "fire"
    store.objects.pop("k")  # published and deleted
    assert again.count("k", "a:0", precreated=True) == "late"


def test_the_chord_knobs_set_on_a_built_backend_reach_the_parts_that_use_them() -> None:
    """``backend.cas_deadline = 0.5`` on a built backend takes effect (it was dropped when the
    knobs moved into the result store and the chord engine); the class keeps its defaults."""
    from celery import Celery

    from s3result.backend import S3Backend

    app = Celery("knobs", set_as_current=False)
    app.conf.result_backend = "s3result+http://AKID:SECRET@127.0.0.1:9/bucket/knobs"
    backend = app.backend
    assert (backend.cas_deadline, backend.chord_lease, backend.chord_tree_from) == (120.0, 60.0, 2)
    backend.cas_deadline, backend.chord_lease, backend.chord_tree_from = 0.5, 3.0, 10**9
    assert backend.store.cas_deadline == 0.5 and backend.chords.counter.deadline_s == 0.5
    assert backend.chords.tree.deadline_s == 0.5 and backend.chords._incr.deadline_s == 0.5
    assert backend.chords.counter.lease_s == 3.0 and backend.chords.tree_from == 10**9
    assert (backend.cas_deadline, backend.chord_lease, backend.chord_tree_from) == (0.5, 3.0, 10**9)
    assert (S3Backend.cas_deadline, S3Backend.chord_lease, S3Backend.chord_tree_from) == (120.0, 60.0, 2)
    assert backend.chord_turns is True and backend.chords.turns.enabled
    from s3result import worker

    turns = backend.chords.turns
    assert (turns.pooled, turns.idle_before, turns.time_limited) == (
        worker.pooled,
        worker.idle_before,
        worker.time_limited,
    )
    backend.chord_turns = False
    assert backend.chords.turns.enabled is False and S3Backend.chord_turns is True
