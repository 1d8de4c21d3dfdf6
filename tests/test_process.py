"""The owner of the process's shared state (s3result/s3/process.py), as pure logic.

Each test builds its own ``ProcessState`` and calls ``after_fork_in_child()`` itself: a fork
simulated in one process. The real forks: tests/test_forks.py (the registry, in a child) and
tests/integration/test_fork_state.py (every slot of the runtime, with its locks held).
"""

from __future__ import annotations

import threading

import pytest

from s3result.s3.config import StoreId
from s3result.s3.process import ProcessState

ONE = StoreId("http://127.0.0.1:1", "one")
TWO = StoreId("http://127.0.0.1:1", "two")


def test_a_slot_makes_its_value_once_and_hands_out_the_same_object() -> None:
    state = ProcessState()
    made: list[int] = []

    def make() -> list[int]:
        made.append(1)
        return []

    seen = state.slot("test.once", make, fork="kept", why="test")
    threads = [threading.Thread(target=seen.get) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen.get() is seen.get() and made == [1]


def test_a_store_slot_keeps_one_value_per_store() -> None:
    state = ProcessState()
    per_store = state.store_slot("test.per-store", dict[str, str], key=StoreId, fork="kept", why="test")
    per_store.get(ONE)["k"] = "one"
    assert per_store.get(TWO) == {} and per_store.get(ONE) == {"k": "one"}
    assert per_store.get(StoreId("http://127.0.0.1:1", "one")) is per_store.get(ONE)  # equal ids, one value
    assert set(per_store.values()) == {ONE, TWO}
    with pytest.raises(TypeError, match=r"'test.per-store' is per store: get\(\) takes a StoreId"):
        per_store.get("http://127.0.0.1:1 one")  # type: ignore[arg-type]


def test_each_fate_at_a_simulated_fork() -> None:
    state = ProcessState()
    lock = state.slot("test.lock", threading.Lock, fork="renewed", why="test")
    queue = state.store_slot("test.queue", list[str], key=StoreId, fork="emptied", why="test")
    fact = state.store_slot("test.fact", dict[str, int], key=StoreId, fork="kept", why="test")
    parents_lock, parents_queue, parents_fact = lock.get(), queue.get(ONE), fact.get(ONE)
    parents_lock.acquire()  # held by a thread that does not exist in the child
    parents_queue.append("in flight")
    parents_fact["size"] = 3
    state.after_fork_in_child()
    assert lock.get() is not parents_lock and lock.get().acquire(blocking=False)
    assert queue.values() == {} and queue.get(ONE) == [] and parents_queue == ["in flight"]
    assert fact.get(ONE) is parents_fact and fact.get(ONE) == {"size": 3}
    assert state.held == []  # emptied values are dropped unless the slot holds them


def test_hold_keeps_the_parents_values_and_after_fork_runs_on_kept_ones() -> None:
    state = ProcessState()
    listeners = state.slot("test.listeners", dict[str, object], fork="emptied", why="test", hold=True)
    dropped: list[list[str]] = []
    turns = state.store_slot(
        "test.turns", list[str], key=StoreId, fork="kept", why="test", after_fork=lambda v: dropped.append(v)
    )
    parents = listeners.get()
    parents["app"] = object()
    turns.get(ONE).append("turn")
    turns.get(TWO)
    state.after_fork_in_child()
    assert listeners.get() == {} and state.held == [parents]
    assert dropped == [turns.get(ONE), turns.get(TWO)]


def test_a_fork_renews_registered_locks_then_slots_then_runs_callbacks() -> None:
    state = ProcessState()
    order: list[str] = []

    class Owner:
        def __init__(self) -> None:
            self._lock = threading.Lock()

    owner = Owner()
    state.renew_locks_after_fork(owner, "_lock")
    owner._lock.acquire()
    state.slot("test.first", list[str], fork="kept", why="test", after_fork=lambda v: order.append("first"))
    state.slot("test.second", list[str], fork="kept", why="test", after_fork=lambda v: order.append("second"))
    for slot in state.slots():
        slot.get()  # type: ignore[attr-defined]
    state.on_fork_in_child(lambda: order.append("callback" if owner._lock.acquire(blocking=False) else "held"))
    state.after_fork_in_child()
    assert order == ["first", "second", "callback"]
    assert [s.name for s in state.slots()] == ["test.first", "test.second"]


def test_a_slot_is_declared_once_with_a_fate_it_can_have() -> None:
    state = ProcessState()
    state.slot("test.twice", list[str], fork="kept", why="test")
    with pytest.raises(ValueError, match="declared twice"):
        state.slot("test.twice", list[str], fork="kept", why="test")
    with pytest.raises(ValueError, match="expected one of renewed, emptied, kept"):
        state.slot("test.bad", list[str], fork="dropped", why="test")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="after_fork runs on kept values only"):
        state.slot("test.hook", list[str], fork="emptied", why="test", after_fork=lambda v: None)
    with pytest.raises(ValueError, match="hold keeps the parent's values of an emptied slot"):
        state.slot("test.hold", list[str], fork="kept", why="test", hold=True)


def test_forget_drops_every_value() -> None:
    state = ProcessState()
    per_store = state.store_slot("test.forget", list[str], key=StoreId, fork="kept", why="test")
    first = per_store.get(ONE)
    per_store.forget()
    assert per_store.values() == {} and per_store.get(ONE) is not first
