"""Turns (s3result/chords/turns.py): which part of a small chord waits how long before its result's
PUT (pure logic). The waits are held with real workers by tests/e2e/test_chord_turns.py."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from s3result.chords import turns
from s3result.chords.geometry import STAGGER_FROM, TURNS_MAX, Geometry
from s3result.chords.state import MARK


@pytest.fixture(autouse=True)
def _came_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's thread comes to its chords idle (``IDLE_TURNS``), but where a test says not."""
    monkeypatch.setattr(turns, "IDLE_TURNS", -math.inf)


def test_a_turn_is_a_few_result_puts_within_bounds() -> None:
    assert turns.turn_s(0.01) == 2**-5  # 3 x 10 ms, rounded up to a power of two: 31.25 ms
    assert turns.turn_s(0.0) == turns.MIN_TURN_S  # a local store: 2 ms
    assert turns.turn_s(5.0) == turns.MAX_TURN_S  # a PUT that was retried measures the retries


def test_the_parts_of_one_chord_agree_on_their_turn() -> None:
    """Their processes' last PUTs took 23-48 ms on one busy store: one turn for all."""
    assert {turns.turn_s(took / 1000) for took in range(23, 49)} == {turns.MAX_TURN_S}
    assert {turns.turn_s(took / 1000) for took in range(11, 21)} == {2**-4}


def _writes(tree: Geometry) -> dict[tuple[int, int], list[int]]:
    """Who writes which node in which turn, when every part writes in its turn: (node, turn) -> parts.
    A column's last row writes its leaf, then (height 2) the inner node, then the root."""
    slots: dict[tuple[int, int], list[int]] = {}
    last_child: dict[int, tuple[int, int]] = {}  # inner node -> (turn, part) of its last child
    for i in range(tree.n):
        turn, leaf = turns.turns_ahead(tree, i), tree.leaf_of(i)
        slots.setdefault((leaf, turn), []).append(i)
        if i >= tree.n - tree.stripes:  # it completes its leaf: it writes the node above
            slots.setdefault((-1 - tree.parent(leaf), turn), []).append(i)
            last_child[tree.parent(leaf)] = max(last_child.get(tree.parent(leaf), (-1, -1)), (turn, i))
    if tree.height == 2:  # an inner node's last child writes the root next
        for turn, i in last_child.values():
            slots.setdefault((-1000, turn), []).append(i)
    return slots


@pytest.mark.parametrize("n", [2, 3, 5, 10, 12, 13, 24, 25, 32, 48, 63, 64])
def test_in_turn_no_two_parts_of_a_small_chord_write_one_leaf_or_its_parent_together(n: int) -> None:
    tree = Geometry.fit(n)
    clashes = {slot: parts for slot, parts in _writes(tree).items() if len(parts) > 1}
    assert clashes == {}
    rows = -(-n // tree.stripes)
    # Bounded: the last rows follow the longest column's last row, one turn each at most.
    assert max(turns.turns_ahead(tree, i) for i in range(n)) <= rows - 1 + min(tree.stripes, 2 * tree.fan_in)


def test_a_row_waits_for_the_rows_before_it_in_its_leaf() -> None:
    tree = Geometry.fit(10)  # 3 columns of 4, 3 and 3 rows
    assert [turns.turns_ahead(tree, i) for i in range(10)] == [0, 0, 0, 1, 1, 1, 2, 2, 3, 4]


def test_larger_chords_and_other_trees_do_not_wait() -> None:
    for n in (TURNS_MAX + 1, 200, 1000, STAGGER_FROM, 10_000):
        tree = Geometry.fit(n)
        assert {turns.turns_ahead(tree, i) for i in range(0, n, 7)} == {0}, n
    assert turns.turns_ahead(Geometry.fit(10), 10) == 0  # an index out of range counts as it is


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _request(index: int, group: str = "g1", native: bool = True, **extra: Any) -> SimpleNamespace:
    mark = {"native": native, "gid": group, "tree": Geometry.fit(10).to_mark()}
    fields = {"id": f"{group}-{index}", "task": "part", "chord": {"task": "body", MARK: mark}, **extra}
    return SimpleNamespace(group=group, group_index=index, **fields)


def _app(hard: float | None = None, soft: float | None = None, tasks: Any = None) -> SimpleNamespace:
    return SimpleNamespace(conf=SimpleNamespace(task_time_limit=hard, task_soft_time_limit=soft), tasks=tasks or {})


APP = _app()


def _turns(clock: _Clock, put_s: float = 0.03) -> turns.Turns:
    """Turns whose thread stored a result in ``put_s`` and lost a race just now."""
    t = turns.Turns(sleep=clock.sleep)
    t.note_write("x", True, put_s)
    t.contended()
    return t


def test_a_part_waits_until_its_turn_from_its_thread_s_first_part_of_the_chord(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = _Clock()
    monkeypatch.setattr(turns.time, "monotonic", lambda: clock.now)
    t = turns.Turns(sleep=clock.sleep)
    turn = turns.turn_s(0.03)
    t.contended()
    t.before_store(_request(9), APP)
    assert clock.slept == []  # no PUT measured yet in this thread: no wait
    t.note_write("x", True, 0.03)
    t.before_store(_request(9, group="g2"), APP)  # a thread's first part of g2: its 4 turns
    assert clock.slept == pytest.approx([4 * turn])
    clock.slept.clear()
    t.before_store(_request(3, group="g3"), APP)  # row 1: 1 turn
    clock.now += 0.5 * turn  # it stored and counted; the thread takes part 6 (row 2) of g3
    t.before_store(_request(6, group="g3"), APP)
    assert clock.slept == pytest.approx([turn, 0.5 * turn])  # to its turn, 2 after g3's start
    clock.slept.clear()
    clock.now += 10.0  # a later part whose turn passed while the thread ran the others
    t.before_store(_request(9, group="g3"), APP)
    assert clock.slept == []
    t.before_store(_request(9, group="g4"), APP)
    assert clock.slept == pytest.approx([4 * turn])  # within CONTENDED_S of the lost race
    clock.slept.clear()
    clock.now += turns.CONTENDED_S
    t.before_store(_request(9, group="g5"), APP)
    assert clock.slept == []  # no race lost for CONTENDED_S: the fleet's parts end apart


def test_a_thread_whose_counts_never_lost_a_race_never_waits() -> None:
    """A solo pool, a worker whose parts come one at a time, a fleet whose parts end apart."""
    clock = _Clock()
    t = turns.Turns(sleep=clock.sleep)
    t.note_write("x", True, 0.03)
    for i in range(10):
        t.before_store(_request(i), APP)
    assert clock.slept == []


def test_a_thread_that_runs_parts_of_two_chords_in_turn_keeps_each_chord_s_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A solo pool taking the parts of two chords queued at once runs A0 B0 A1 B1 ...: each
    part's turn has passed when it comes, and none waits."""
    clock = _Clock()
    monkeypatch.setattr(turns.time, "monotonic", lambda: clock.now)
    t = _turns(clock, 0.04)
    turn = turns.turn_s(0.04)
    for k in range(10):
        for chord in ("A", "B"):
            t.before_store(_request(k, group=chord), APP)
            clock.now += turn  # its PUT, its read and write of the leaf
    assert clock.slept == []
    for i in range(100):  # bounded: the newest chords are kept, not every chord it ran
        t.began(f"x{i}", float(i))
    assert t.began("A", 500.0) == (500.0, True)


def test_late_eager_and_unmarked_parts_and_chord_unlock_store_at_once() -> None:
    clock = _Clock()
    t = _turns(clock)
    t.before_store(_request(9, delivery_info={"redelivered": True}), APP)
    t.before_store(_request(9, group="g2", is_eager=True), APP)
    t.before_store(_request(9, group="g3", native=False), APP)  # the producer chose chord_unlock
    t.before_store(SimpleNamespace(id="x", chord=None, group="g4", group_index=9), APP)  # an older producer
    t.before_store(_request(True, group="g5"), APP)  # type: ignore[arg-type]  # not an index
    t.before_store(None, APP)
    assert clock.slept == []
    t.before_store(_request(9, group="g6"), APP)
    t.before_store(_request(9, group="g6"), APP)  # Celery stores the same task again (a lost reply)
    assert len(clock.slept) == 1


@pytest.mark.parametrize(
    ("request_limits", "app"),
    [
        ((None, 5.0), APP),  # apply_async(soft_time_limit=5)
        ((7.0, None), APP),
        (None, _app(hard=60.0)),  # task_time_limit
        (None, _app(soft=30.0)),
        (None, _app(tasks={"part": SimpleNamespace(time_limit=None, soft_time_limit=10.0)})),  # the task's own
    ],
)
def test_a_part_with_a_time_limit_does_not_wait(request_limits: Any, app: Any) -> None:
    """The wait would count in its run time: a limit striking in it, or in the count after it,
    would fail a part whose work was done in time."""
    clock = _Clock()
    t = _turns(clock)
    t.before_store(_request(9, timelimit=request_limits), app)
    assert clock.slept == []
    t.before_store(_request(9, group="g2", timelimit=(None, None)), APP)
    assert len(clock.slept) == 1


def test_no_part_waits_with_turns_off() -> None:
    """``S3Backend.chord_turns = False``: a burst of small chords on a few processes keeps its pace."""
    clock = _Clock()
    t = _turns(clock)
    t.enabled = False
    t.before_store(_request(9), APP)
    assert clock.slept == []


def test_a_failure_in_the_turn_is_logged_and_the_result_stored(caplog: pytest.LogCaptureFixture) -> None:
    def broken(seconds: float) -> None:
        raise RuntimeError("boom")

    t = turns.Turns(sleep=broken)
    t.note_write("x", True, 0.03)
    t.contended()
    t.before_store(_request(9), APP)  # does not raise
    assert "turn failed" in caplog.text


def test_a_soft_time_limit_in_the_wait_ends_it_and_the_part_is_stored(caplog: pytest.LogCaptureFixture) -> None:
    def struck(seconds: float) -> None:
        raise SoftTimeLimitExceeded()

    t = turns.Turns(sleep=struck)
    t.note_write("x", True, 0.03)
    t.contended()
    t.before_store(_request(9), APP)  # does not raise
    assert "soft time limit" in caplog.text


def test_each_thread_knows_its_own_last_final_write_once() -> None:
    t = turns.Turns()
    t.note_write("t1", True, 0.04)
    assert not t.stored_first("t2")  # another task's
    t.note_write("t1", True, 0.04)
    assert t.stored_first("t1")
    assert not t.stored_first("t1")  # taken
    t.note_write("t1", False, 0.04)  # a redelivery found its state stored already
    assert not t.stored_first("t1")
    seen: list[bool] = []
    t.note_write("t3", True, 0.05)
    thread = threading.Thread(target=lambda: seen.append(t.stored_first("t3")))
    thread.start()
    thread.join()
    assert seen == [False] and t.stored_first("t3")  # per thread


def test_a_prefork_pool_s_process_takes_turns_from_its_first_chord() -> None:
    """Its siblings run the chord's other parts beside it: no race need be lost first."""
    clock = _Clock()
    t = turns.Turns(sleep=clock.sleep)
    t.note_write("x", True, 0.03)
    t.before_store(_request(9), APP)
    assert clock.slept == []  # one process on its own, no race seen
    t.pooled = lambda: True
    t.before_store(_request(9, group="g2"), APP)
    assert clock.slept == pytest.approx([4 * turns.turn_s(0.03)])


def test_the_worker_says_its_pool_forks_before_its_first_child(monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    from s3result import worker

    start = worker._START.get()
    monkeypatch.setattr(start, "prefork", False)
    monkeypatch.setattr(start, "apps", weakref.WeakSet())
    monkeypatch.setattr(start, "limited", False)
    assert not worker.pooled()
    worker.check_before_fork(sender=SimpleNamespace(timeout=None, soft_timeout=None))  # the pool, in the main process
    assert worker.pooled() and not worker.time_limited()  # every child forked next keeps it (a "kept" slot)
    worker.check_before_fork(sender=SimpleNamespace(timeout=None, soft_timeout=30.0))  # --soft-time-limit=30
    assert worker.time_limited()


def test_the_worker_says_how_long_a_thread_was_idle_before_its_task(monkeypatch: pytest.MonkeyPatch) -> None:
    from s3result import worker

    clock = _Clock()
    monkeypatch.setattr(worker.time, "monotonic", lambda: clock.now)
    runs = worker._RUNS.get()
    monkeypatch.setattr(runs, "ended", None)
    monkeypatch.setattr(runs, "gap", None)
    worker._task_started()
    assert worker.idle_before() is None  # its first task
    clock.now = 10.0
    worker._task_ended()  # task_postrun: after its result was stored
    clock.now = 10.05
    worker._task_started()  # task_prerun of the next
    assert worker.idle_before() == pytest.approx(0.05)


def test_a_worker_thread_idle_for_two_turns_or_less_before_the_chord_takes_no_turns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(turns, "IDLE_TURNS", 2)
    clock = _Clock()
    t = _turns(clock)
    gaps = iter([1.5 * turns.turn_s(0.03), 2.5 * turns.turn_s(0.03)])
    t.idle_before = lambda: next(gaps)
    t.before_store(_request(9, group="busy"), APP)
    assert clock.slept == []
    t.before_store(_request(9, group="idle"), APP)
    assert clock.slept == pytest.approx([4 * turns.turn_s(0.03)])


def test_a_part_under_the_pool_s_time_limits_does_not_wait() -> None:
    """``celery worker --time-limit``: Celery hands it to the pool, not to ``app.conf``."""
    clock = _Clock()
    t = _turns(clock)
    t.time_limited = lambda: True
    t.before_store(_request(9), APP)
    assert clock.slept == []


def test_a_thread_that_comes_to_a_chord_busy_takes_no_turns_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks back to back (a burst of small chords on a few processes): its waits would be time
    taken from the next part, for few races saved (20 chords of 12 on 1 x prefork 4: 11.5 s in
    turn, 7.0 s without, 3.99 requests per part against 4.06)."""
    monkeypatch.setattr(turns, "IDLE_TURNS", 2)
    clock = _Clock()
    monkeypatch.setattr(turns.time, "monotonic", lambda: clock.now)
    t = turns.Turns(sleep=clock.sleep)
    t.contended()
    turn = turns.turn_s(0.03)
    t.note_write("x", True, 0.03)  # its last task's result, stored just now
    clock.now += 1.5 * turn
    t.before_store(_request(9, group="busy"), APP)
    t.before_store(_request(6, group="busy"), APP)  # a later part of the same chord: no turn either
    assert clock.slept == []
    t.note_write("y", True, 0.03)
    clock.now += 2.5 * turn  # idle for more than 2 turns
    t.before_store(_request(9, group="idle"), APP)
    assert clock.slept == pytest.approx([4 * turn])
