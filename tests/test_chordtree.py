"""chordtree as pure logic: the geometry's arithmetic, and node counting over the in-memory
conditional store of test_counter.

Against moto and Celery's trace: tests/integration/test_chord_tree.py; counts at the wire:
tests/integration/test_chord_tree_counts.py.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from s3result.chords import geometry as treegeometry
from s3result.chords.geometry import Geometry, PartClash, fingerprint, load_node, node_key
from s3result.chords.rootcounter import CounterState
from s3result.chords.tree import TreeCounter
from s3result.errors import RequestTimeout

from .test_counter import MemoryStore


@pytest.mark.parametrize("n", [1, 2, 31, 32, 33, 100, 256, 1000, 2049, 10000])
def test_every_part_is_counted_in_exactly_one_leaf_and_every_node_has_a_parent(n: int) -> None:
    tree = Geometry(n)
    owner: dict[int, int] = {}
    for leaf in tree.levels[0]:
        for i in tree.leaf_indexes(leaf):
            assert i not in owner
            owner[i] = leaf
    assert sorted(owner) == list(range(n))
    assert all(tree.leaf_of(i) == owner[i] for i in range(n))
    for level in range(1, tree.height + 1):
        children = [int(c) for j in tree.levels[level] for c in tree.expected(level, j)]
        assert sorted(children) == tree.levels[level - 1]
    assert tree.levels[-1] == [0] or len(tree.levels[-1]) == 1


def test_leaves_are_small_and_a_fleet_working_in_index_order_touches_different_leaves() -> None:
    tree = Geometry(10000)
    assert max(len(tree.leaf_indexes(leaf)) for leaf in tree.levels[0]) == tree.fill
    for start in range(0, 10000 - 32, 997):
        window = {tree.leaf_of(i) for i in range(start, start + 32)}
        assert len(window) == 32, "32 consecutive parts should count in 32 different leaves"


def test_leaves_complete_spread_along_the_chord_not_all_at_its_end() -> None:
    """Parts end in index order: the index at which each leaf completes is its last index."""
    tree = Geometry(10000)
    ends = sorted(max(tree.leaf_indexes(leaf)) for leaf in tree.levels[0])
    in_last_tenth = sum(1 for e in ends if e >= 9000)
    assert in_last_tenth < len(ends) / 5, in_last_tenth


def test_geometry_round_trips_through_the_mark_and_refuses_nonsense() -> None:
    tree = Geometry(5000)
    assert Geometry.from_mark({"tree": tree.to_mark()}) == tree
    assert Geometry.from_mark({"native": True}) is None
    for bad in ({"n": 0, "s": 32, "f": 32, "k": 4}, {"n": "5", "s": 32, "f": 32, "k": 4}, {"n": True}):
        with pytest.raises(PartClash):
            Geometry.from_mark({"tree": bad})


def _root(store: MemoryStore, key: str = "root", **state: Any) -> None:
    store.put(key, CounterState(**state).dump())


def _tree(store: MemoryStore, **kw: Any) -> TreeCounter:
    return TreeCounter(lambda: store, "scope", **kw)  # type: ignore[arg-type,return-value]


def test_threads_count_a_leaf_together_and_the_completing_member_goes_up_once() -> None:
    store = MemoryStore(delay=0.005)
    _root(store)
    tree = Geometry(2000)
    leaf = tree.leaf_of(1000)
    indexes = tree.leaf_indexes(leaf)
    steps: list[str] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        step = _tree(store).add("root", tree, 0, leaf, str(i), fingerprint(f"t{i}") + str(i))
        with lock:
            steps.append(step)

    threads = [threading.Thread(target=work, args=(i,)) for i in indexes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(steps) == {"up": 1, "wait": len(indexes) - 1}
    node = load_node(store.objects[node_key("root", 0, leaf)][0])
    assert all(slot is not None for slot in node["m"])


def test_a_lost_reply_is_resolved_by_reading_again_and_a_redelivery_climbs_again() -> None:
    store = MemoryStore()
    _root(store)
    tree = Geometry(300)
    leaf = tree.leaf_of(5)
    members = tree.leaf_indexes(leaf)
    counter = _tree(store)
    for i in members[:-1]:
        assert counter.add("root", tree, 0, leaf, str(i), fingerprint(f"t{i}")) == "wait"
    real_put = store.put

    def put_then_lose(key: str, body: bytes, **kw: Any) -> str:
        real_put(key, body, **kw)
        raise RequestTimeout("reply lost")

    store.put = put_then_lose  # type: ignore[method-assign]
    last = members[-1]
    assert counter.add("root", tree, 0, leaf, str(last), fingerprint(f"t{last}")) == "up"
    store.put = real_put  # type: ignore[method-assign]
    # The same part again (a redelivery): its add is a no-op, and it goes up again (idempotent above).
    assert counter.add("root", tree, 0, leaf, str(last), fingerprint(f"t{last}")) == "up"
    assert counter.add("root", tree, 0, leaf, str(members[0]), fingerprint(f"t{members[0]}")) == "wait"


def test_another_task_at_a_counted_index_is_a_clash() -> None:
    store = MemoryStore()
    _root(store)
    tree = Geometry(300)
    counter = _tree(store)
    counter.add("root", tree, 0, tree.leaf_of(7), "7", fingerprint("a") + "1")
    with pytest.raises(PartClash, match="duplicated group_index"):
        counter.add("root", tree, 0, tree.leaf_of(7), "7", fingerprint("b") + "1")
    with pytest.raises(PartClash):
        counter.add("root", tree, 0, tree.leaf_of(7), "8", fingerprint("c"))


def test_a_leaf_is_not_created_once_the_chord_ended() -> None:
    store = MemoryStore()
    tree = Geometry(300)
    assert _tree(store).add("gone", tree, 0, tree.leaf_of(3), "3", fingerprint("x")) == "late"
    assert list(store.objects) == []
    _root(store, "failed", failed="boom")
    assert _tree(store).add("failed", tree, 0, tree.leaf_of(3), "3", fingerprint("x")) == "failed"
    assert list(store.objects) == ["failed"]


def test_a_store_that_keeps_failing_names_its_own_error_past_the_deadline() -> None:
    store = MemoryStore()
    _root(store)
    tree = Geometry(300)

    def refuse(key: str, body: bytes, **kw: Any) -> str:
        raise RequestTimeout("store gone (test)")

    store.put = refuse  # type: ignore[method-assign]
    with pytest.raises(RequestTimeout, match="store gone"):
        _tree(store, deadline_s=0.05, sleep=lambda s: None).add("root", tree, 0, tree.leaf_of(1), "1", fingerprint("x"))


def test_a_tree_root_is_version_3_which_older_workers_refuse() -> None:
    """An older worker would count parts in a tree's root and complete it early: it must refuse it."""
    import json

    assert json.loads(CounterState(tree=True).dump())["v"] == 3
    assert json.loads(CounterState().dump())["v"] == 2
    assert CounterState.load(CounterState(tree=True, size=3).dump()).tree


def test_fitted_geometries_count_every_part_once_with_the_staggered_arithmetic() -> None:
    """Below STAGGER_FROM a geometry has one leaf per column and no inner node with a single
    child. It is the same ``Geometry`` arithmetic with other numbers (what the mark carries)."""
    for n in [*range(1, 300), 399, 400, 500, 777, 1000, treegeometry.STAGGER_FROM - 1]:
        g = treegeometry.Geometry.fit(n)
        assert treegeometry.Geometry.from_mark({"tree": g.to_mark()}) == g
        leaves = g.levels[0]
        assert sorted(i for leaf in leaves for i in g.leaf_indexes(leaf)) == list(range(n)), n
        assert all(g.leaf_of(i) in leaves for i in range(n))
        assert len(leaves) == min(g.stripes, n), n
        for level in range(1, g.height):
            assert all(len(g.expected(level, node)) > 1 for node in g.levels[level]), (n, level)
        assert len(g.expected(g.height, 0)) > 1 or n <= treegeometry.SMALL_LEAF, n
    assert treegeometry.Geometry.fit(treegeometry.STAGGER_FROM) == treegeometry.Geometry(treegeometry.STAGGER_FROM)


def test_a_small_root_carries_its_children_s_slots_within_the_budget() -> None:
    """``root_value``: a node's slots go up into the root while they fit the budget (times the
    root's other members); ``root_slots`` gives them back only when every member carries."""
    import json

    from s3result.chords.geometry import ROOT_CARRY_BUDGET, Geometry

    tree = Geometry.fit(10)
    members = tree.expected(tree.height, 0)
    assert len(members) == 3
    small = ["abcdef1", "abcdef2"]
    assert tree.root_value(small) == json.dumps(small, separators=(",", ":"))
    big = ["abcdef" + "x" * 48] * (ROOT_CARRY_BUDGET // 2 // 50 + 1)
    assert tree.root_value(big) is None  # two others: it would cost more than reading the nodes
    assert tree.root_value(1) is None  # a node that carries nothing
    values = {m: json.dumps(small) for m in members}
    assert tree.root_slots(values) == [small] * 3
    del values[members[-1]]
    assert tree.root_slots(values) is None  # an older worker counted that node: read the nodes
    assert tree.root_slots({m: "not json" for m in members}) is None


def test_every_part_of_a_chord_shares_one_geometry_whose_leaves_make_no_row_past_the_end() -> None:
    """Each part works out its tree from the mark: one ``Geometry`` per shape and process (its
    levels computed once, not per part), and a leaf makes only the rows that hold parts (a small
    chord's fill is its whole column: filtering made each part pay milliseconds of CPU at 500)."""
    for n in (10, 64, 500, 1023, 1024, 5000):
        fitted = Geometry.fit(n)
        mark = {"native": True, "tree": fitted.to_mark()}
        shared = Geometry.from_mark(mark)
        assert shared == fitted
        assert Geometry.from_mark({"tree": dict(fitted.to_mark())}) is shared
        column_rows = [-(-(n - c) // fitted.stripes) for c in range(fitted.stripes)]
        last = (max(column_rows) // fitted.fill + 2) * fitted.stripes
        for leaf in range(last):
            band, column = divmod(leaf, fitted.stripes)
            start = (band - 1) * fitted.fill + fitted._phase(column)
            by_definition = [
                r * fitted.stripes + column
                for r in range(max(0, start), start + fitted.fill)
                if r * fitted.stripes + column < n
            ]
            rows = fitted._leaf_rows(leaf)
            assert fitted.leaf_indexes(leaf) == by_definition, (n, leaf)
            assert len(rows) == len(by_definition) and rows.start >= 0, (n, leaf)


def test_a_first_run_finding_its_leaf_missing_waits_for_the_leaf_s_first_part_instead_of_racing() -> None:
    """Parts of a small chord end together: the leaf's first part creates the leaf without reading
    it, and a later row that reads it missing waits its turn (no create that would lose)."""
    store = MemoryStore()
    _root(store)
    tree = Geometry.fit(10)
    leaf = tree.leaf_of(0)
    first, second = tree.leaf_indexes(leaf)[:2]
    creates: list[str] = []
    real_put = store.put

    def put(key: str, body: bytes, **kw: Any) -> str:
        creates.append(key)
        return real_put(key, body, **kw)

    store.put = put  # type: ignore[method-assign]
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:  # meanwhile, the leaf's first part counts itself (another process)
            other = TreeCounter(lambda: store, "another process")  # type: ignore[arg-type,return-value]
            assert other.add_and_read("root", tree, 0, leaf, str(first), fingerprint("a"), first=True)[0] == "wait"

    step = _tree(store, sleep=sleep).add_and_read("root", tree, 0, leaf, str(second), fingerprint("b"), first=True)
    assert step[0] == "wait"
    assert len(pauses) == 1 and pauses[0] > 0
    key = node_key("root", 0, leaf)
    assert creates == [key, key], "one create by the first part, one If-Match by the second: no lost create"
    assert load_node(store.objects[key][0])["m"][:2] == [fingerprint("a"), fingerprint("b")]


def test_a_first_run_still_creates_its_leaf_when_the_first_part_never_comes() -> None:
    store = MemoryStore()
    _root(store)
    tree = Geometry.fit(10)
    leaf = tree.leaf_of(0)
    second = tree.leaf_indexes(leaf)[1]
    pauses: list[float] = []
    step = _tree(store, sleep=pauses.append).add_and_read(
        "root", tree, 0, leaf, str(second), fingerprint("b"), first=True
    )
    assert step[0] == "wait" and len(pauses) == 1
    assert load_node(store.objects[node_key("root", 0, leaf)][0])["m"][1] == fingerprint("b")
