"""Large native chords counted in a tree of small counters (s3result/chords/tree.py), on moto.

Parts finish through ``mark_as_done`` as Celery's trace does (the ``Chord`` helper of
test_chord_cases); the producer's ``chord_tree_from`` is lowered where a small chord stands in
for a large one. Pure geometry: tests/test_chordtree.py. Counts at the wire with forked
processes: test_chord_tree_counts below; timings: benchmarks/chords.py.
"""

from __future__ import annotations

import random
import time
from typing import Any
from unittest import mock

import pytest
from celery import states
from celery.exceptions import ChordError

from s3result.chords import geometry as treegeometry
from s3result.chords import tree as chordtree
from s3result.chords.rootcounter import MARK
from s3result.errors import RequestTimeout
from s3result.testing.store import MotoServer

from .test_chord_attacks import finish_in_threads
from .test_chord_cases import Chord, lossy, make_app, store, store_has

__all__ = ("store",)


def tree_chord(producer: Any, size: int, gid: str, tree_from: int = 8, fitted: bool = False) -> Chord:
    """A chord counted in a tree: the staggered geometry of large chords (every level a test of a
    small chord needs), or with ``fitted`` the one the producer fits to ``size``."""
    if not fitted:
        producer.backend.chords.tree_for = lambda args: treegeometry.Geometry(len(list(args[1])))
    chord = Chord(producer, size, gid, tree_from=tree_from)
    assert "tree" in chord.requests[0].chord[MARK], "the producer should have chosen a tree"
    return chord


def nodes_of(chord: Chord, worker: Any) -> list[str]:
    tree = treegeometry.Geometry.from_mark(chord.requests[0].chord[MARK])
    assert tree is not None
    root = worker.backend.store.key(worker.backend.get_key_for_chord(chord.gid))
    return [root] + [treegeometry.node_key(root, lv, n) for lv, ns in enumerate(tree.levels[:-1]) for n in ns]


def test_tree_chord_fires_once_with_every_value_and_cleans_up(store: MotoServer) -> None:
    """300 parts in a shuffled order, a third of them twice: one body, values in header order,
    no node left behind, and the join read no part's result (every value was in a leaf)."""
    url = store.url("tree-basic")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, 300, "g-tree-basic")
    order = list(range(300)) + random.Random(3).sample(range(300), 100)
    random.Random(4).shuffle(order)
    reads: list[str] = []
    firing = worker.backend.chords.firing
    real_get_many = firing.read_results
    firing.read_results = lambda ids, **kw: reads.extend(ids) or real_get_many(ids, **kw)
    for i in order:
        chord.finish(worker, i)
    assert chord.fired == [([2 * i for i in range(300)],)]
    assert reads == []
    assert not any(store_has(worker, k) for k in nodes_of(chord, worker))


def test_tree_chord_through_lost_conditional_replies_of_two_thousand_parts(store: MotoServer) -> None:
    """2,000 parts, 16 threads, every part delivered twice, 10% of conditional PUTs' replies lost
    (applied by the store, the client sees a reset): the body fires exactly once, every value."""
    from s3result.testing.faults import FaultProxy

    faults = FaultProxy(store.host, store.port, seed=22)
    faults.set_faults(lose_conditional_reply=0.1)
    try:
        url = store.url("tree-lossy")
        producer = make_app(url)
        worker = make_app(url.replace(f":{store.port}/", f":{faults.port}/"), max_attempts=12)
        chord = tree_chord(producer, 2000, "g-tree-lossy", tree_from=256)
        work = list(range(2000)) * 2
        random.Random(5).shuffle(work)
        errors = finish_in_threads(chord, worker, work, timeout=300)
        assert not errors, errors[:3]
        assert faults.stats["lose_conditional_reply"] > 50
        assert chord.fired == [([2 * i for i in range(2000)],)]
        assert chord.body_meta(producer)["status"] == states.PENDING  # published, never failed
    finally:
        faults.close()


def test_big_and_failed_results_are_read_at_join_time(store: MotoServer) -> None:
    url = store.url("tree-big")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, 40, "g-tree-big")
    big = "x" * (treegeometry.VALUE_MAX + 10)
    with chord.recording():
        for i, req in enumerate(chord.requests):
            worker.backend.mark_as_done(req.id, big if i == 7 else 2 * i, request=req)
    expected = [2 * i for i in range(40)]
    expected[7] = big  # type: ignore[call-overload]
    assert chord.fired == [(expected,)]

    chord = tree_chord(producer, 40, "g-tree-fail")
    with chord.recording():
        for i, req in enumerate(chord.requests):
            if i == 5:
                worker.backend.mark_as_failure(req.id, ValueError("part 5 broke"), request=req)
            else:
                worker.backend.mark_as_done(req.id, 2 * i, request=req)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE and "part 5 broke" in str(meta["result"]), meta
    assert chord.fired == []


@pytest.mark.parametrize("anomaly", ["duplicated", "missing", "out_of_range"])
def test_part_with_a_bad_group_index_fails_the_body_loudly(store: MotoServer, anomaly: str) -> None:
    """The tree needs indexes 0..n-1 once each: anything else fails the body with a ChordError
    naming the index (counting it anywhere would complete a leaf early or leave one open)."""
    url = store.url(f"tree-{anomaly}")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, 40, f"g-tree-{anomaly}")
    bad = chord.requests[3]
    bad.group_index = {"duplicated": 4, "missing": None, "out_of_range": 40}[anomaly]
    for i in range(40):
        chord.finish(worker, i)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert isinstance(meta["result"], ChordError) or "ChordError" in repr(meta["result"]), meta
    assert ("duplicated group_index" if anomaly == "duplicated" else "group_index") in str(meta["result"])
    assert chord.fired == []


def test_size_that_differs_from_the_numbered_tasks_fails_before_the_last_part(store: MotoServer) -> None:
    url = store.url("tree-size")
    producer = make_app(url)
    producer.backend.chords.tree_from = 8
    chord = Chord.__new__(Chord)
    body = producer.tasks["tsum"].s()
    body.freeze()
    from celery import group

    header = group(producer.tasks["add"].s(i, i) for i in range(20))
    header.options["task_id"] = "g-tree-size"
    args = header._freeze_group_tasks(group_id="g-tree-size", chord=body)
    producer.backend.apply_chord(args, body)
    with pytest.raises(ChordError, match="is not its number of header tasks"):
        producer.backend.set_chord_size("g-tree-size", 21)
    meta = producer.backend.get_task_meta(body.id, cache=False)
    assert meta["status"] == states.FAILURE
    del chord


def test_redelivery_of_a_leaf_completing_part_whose_first_run_died_climbs_again(store: MotoServer) -> None:
    """The part that completes a leaf dies before counting the leaf in its parent: its
    redelivery finds its slot there and the leaf completed by it, and goes up (idempotent)."""
    url = store.url("tree-climb")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, 40, "g-tree-climb")
    for i in range(39):
        chord.finish(worker, i)
    real_add = chordtree.TreeCounter.add_and_read

    def die_above_the_leaf(self: Any, root: str, tree: Any, level: int, *a: Any) -> Any:
        if level > 0:
            raise SystemExit("killed (test)")
        return real_add(self, root, tree, level, *a)

    with mock.patch.object(chordtree.TreeCounter, "add_and_read", die_above_the_leaf), pytest.raises(SystemExit):
        chord.finish(worker, 39)
    assert chord.fired == []
    chord.finish(worker, 39)
    assert chord.fired == [([2 * i for i in range(40)],)]


def test_join_timeout_is_the_bound_the_user_set(store: MotoServer) -> None:
    """A part whose result is too big to travel with its count and was never stored (its task
    ignores results): the join waits for it only ``result_chord_join_timeout`` (2 s), then the
    body fails with a ChordError naming the setting."""
    url = store.url("tree-jointimeout")
    producer, worker = make_app(url), make_app(url)
    worker.conf.result_chord_join_timeout = 2.0
    chord = Chord(producer, 10, "g-jointimeout-bound")
    big = "y" * (treegeometry.VALUE_MAX + 10)
    for i in range(9):
        chord.finish(worker, i)
    req = chord.requests[9]
    started = time.monotonic()
    with chord.recording():
        worker.backend.on_chord_part_return(req, states.SUCCESS, big)  # stored nowhere
    took = time.monotonic() - started
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "result_chord_join_timeout=2.0" in str(meta["result"]), meta["result"]
    assert took < 2.0 + 2.0, took  # 2 s and one request's time (generous on a loaded machine)
    assert chord.fired == []


def test_late_part_after_the_chord_fired_leaves_nothing(store: MotoServer) -> None:
    url = store.url("tree-late")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, 40, "g-tree-late")
    for i in range(40):
        chord.finish(worker, i)
    assert len(chord.fired) == 1
    chord.finish(worker, 0)
    chord.finish(worker, 39)
    assert len(chord.fired) == 1
    assert not any(store_has(worker, k) for k in nodes_of(chord, worker))


def test_lost_reply_of_every_leaf_write_counts_once(store: MotoServer) -> None:
    """Every conditional write to a tree node lands and its first reply is lost."""
    url = store.url("tree-lost")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, 64, "g-tree-lost")
    lost: set[bytes] = set()

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if method == b"PUT" and b"chord-unlock" in target and target not in lost:
            lost.add(target)
            raise RequestTimeout("reply lost (test)")

    lossy(worker, when)
    for i in reversed(range(64)):
        chord.finish(worker, i)
    assert chord.fired == [([2 * i for i in range(64)],)]
    assert len(lost) > 10


@pytest.mark.parametrize("size", [2, 10, 40, 63, 64, 130, 1100])
def test_fitted_tree_fires_once_and_cleans_up(store: MotoServer, size: int) -> None:
    """The geometry the producer fits to a chord's size: every part once (a fifth twice, in a
    shuffled order), one body with every value, no node left behind."""
    url = store.url(f"tree-fit-{size}")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, size, f"g-tree-fit-{size}", tree_from=2, fitted=True)
    assert treegeometry.Geometry.from_mark(chord.requests[0].chord[MARK]) == treegeometry.Geometry.fit(size)
    order = list(range(size)) + random.Random(size).sample(range(size), size // 5)
    random.Random(size + 1).shuffle(order)
    for i in order:
        chord.finish(worker, i)
    assert chord.fired == [([2 * i for i in range(size)],)]
    assert not any(store_has(worker, k) for k in nodes_of(chord, worker))


@pytest.mark.parametrize(("size", "reads"), [(10, 0), (64, 0), (200, 4)])
def test_a_small_chord_joins_from_the_root_state_it_wrote(store: MotoServer, size: int, reads: int) -> None:
    """A node completing into the root carries its slots there within ``ROOT_CARRY_BUDGET``: the
    firing part joins from the root state its own count wrote, reading no node (a larger chord's
    join reads the nodes of its join level: 4 at 200 parts, whose 4 nodes hold ~600 bytes each)."""
    url = store.url(f"tree-rootcarry-{size}")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, size, f"g-tree-rootcarry-{size}", tree_from=2, fitted=True)
    root = worker.backend.store.key(worker.backend.get_key_for_chord(chord.gid))
    firing: list[bool] = []
    node_gets: list[str] = []
    real_get, real_fire = worker.backend.client.get_or_none, worker.backend.chords.firing.fire

    def get_or_none(key: str, **kwargs: Any) -> Any:
        if firing and key.startswith(root + "."):
            node_gets.append(key)
        return real_get(key, **kwargs)

    def fire(*args: Any, **kwargs: Any) -> Any:
        firing.append(True)
        try:
            return real_fire(*args, **kwargs)
        finally:
            firing.clear()

    worker.backend.client.get_or_none = get_or_none  # type: ignore[method-assign]
    worker.backend.chords.firing.fire = fire  # type: ignore[method-assign]
    for i in range(size):
        chord.finish(worker, i)
    assert chord.fired == [([2 * i for i in range(size)],)]
    assert len(node_gets) == reads, node_gets
    assert not any(store_has(worker, k) for k in nodes_of(chord, worker))
