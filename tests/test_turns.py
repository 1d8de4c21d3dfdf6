"""Turns (s3result/chords/turns.py): who waits how long before writing a tree node (pure logic).

The counts they save are held at the wire by tests/integration/test_chord_tree_counts.py.
"""

from __future__ import annotations

import threading

import pytest

from s3result.chords import turns
from s3result.chords.geometry import ONE_LEAF_MAX, STAGGER_FROM, TURNS_MAX, Geometry


def test_a_turn_is_a_few_of_the_parts_own_puts_within_bounds() -> None:
    assert turns.turn_s(0.01) == 2**-5  # 3 x 10 ms, rounded up to a power of two: 31.25 ms
    assert turns.turn_s(0.0) == turns.MIN_TURN_S  # a local store: 2 ms
    assert turns.turn_s(5.0) == turns.MAX_TURN_S  # a PUT that was retried measures the retries


def test_the_parts_of_one_chord_agree_on_their_turn() -> None:
    """Their result PUTs took 23-48 ms on one busy store: one turn for all."""
    assert {turns.turn_s(took / 1000) for took in range(23, 49)} == {turns.MAX_TURN_S}
    assert {turns.turn_s(took / 1000) for took in range(11, 21)} == {2**-4}


def test_small_chords_count_in_a_few_leaves_of_at_most_one_leaf_max_rows() -> None:
    for n in range(2, ONE_LEAF_MAX + 1):
        tree = Geometry.fit(n)
        assert (tree.stripes, tree.fill, tree.levels) == (1, n, [[1], [0]]), n
        assert tree.expected(0, 1) == [str(i) for i in range(n)]
    for n in range(ONE_LEAF_MAX + 1, TURNS_MAX + 1):
        tree = Geometry.fit(n)
        rows = -(-n // tree.stripes)
        assert tree.stripes == -(-n // ONE_LEAF_MAX) and rows <= ONE_LEAF_MAX, n
        assert [len(level) for level in tree.levels] == [tree.stripes, 1], n  # the root counts the leaves
        assert sorted(len(tree.leaf_indexes(leaf)) for leaf in tree.levels[0])[-1] == rows, n


def test_the_parts_of_a_one_leaf_chord_that_end_together_wait_their_index_in_turns() -> None:
    tree, turn = Geometry.fit(10), turns.turn_s(0.03)
    waits = [turns.leaf_wait_s(tree, i, (0.03, 100.0), now=100.0) for i in range(10)]
    assert waits == pytest.approx([i * turn for i in range(10)])


def test_a_part_whose_turn_passed_while_its_thread_ran_it_waits_for_nothing() -> None:
    """A solo pool runs the parts one after another: its first part's end starts the schedule,
    and a later part that ends after its turn writes at once."""
    tree, turn = Geometry.fit(10), turns.turn_s(0.03)
    assert turns.leaf_wait_s(tree, 5, (0.03, 100.0), now=100.0 + 6 * turn) == 0.0
    assert turns.leaf_wait_s(tree, 5, (0.03, 100.0), now=100.0 + 4 * turn) == pytest.approx(turn)


def test_in_a_few_leaves_a_part_waits_for_its_row() -> None:
    tree, turn = Geometry.fit(40), turns.turn_s(0.03)  # 4 leaves (columns) of 10 rows
    assert tree.stripes == 4
    assert turns.leaf_wait_s(tree, 3, (0.03, 0.0), now=0.0) == 0.0  # row 0 of column 3
    assert turns.leaf_wait_s(tree, 39, (0.03, 0.0), now=0.0) == pytest.approx(9 * turn)  # row 9


def test_late_runs_and_larger_trees_do_not_wait_in_their_leaf() -> None:
    small = Geometry.fit(10)
    assert turns.leaf_wait_s(small, 9, None, now=0.0) == 0.0  # a redelivery
    for n in (TURNS_MAX + 1, 64, 1000, STAGGER_FROM, 10_000):
        assert turns.leaf_wait_s(Geometry.fit(n), 40, (0.03, 0.0), now=0.0) == 0.0, n
    # An older producer's tree of leaves of 4 rows (its fit of 16 parts) is written in turn too.
    assert turns.leaf_wait_s(Geometry(16, 4, 16, 5), 12, (0.03, 0.0), now=0.0) == pytest.approx(3 * turns.turn_s(0.03))


def test_inner_nodes_of_small_fan_in_below_the_stagger_are_written_in_turn() -> None:
    took = (0.03, 0.0)
    assert turns.turn_at(Geometry.fit(40), 1, took) == turns.turn_s(0.03)  # its root, of 4 leaves
    at_64 = Geometry.fit(64)  # 15 leaves, 4 inner nodes of 4, the root
    assert [len(level) for level in at_64.levels] == [15, 4, 1]
    assert turns.turn_at(at_64, 0, took) == 0.0  # a leaf: its rows are reached along the chord
    assert turns.turn_at(at_64, 1, took) == turns.turn_s(0.03)
    assert turns.turn_at(at_64, 2, took) == turns.turn_s(0.03)
    assert turns.turn_at(at_64, 1, None) == 0.0  # a redelivery climbing
    # A fan-in of 8 would make its last child wait 7 turns; staggered leaves complete along the chord.
    for n in (200, 1000, STAGGER_FROM, 10_000):
        tree = Geometry.fit(n)
        assert all(turns.turn_at(tree, level, took) == 0.0 for level in range(tree.height + 1)), n


def test_first_runs_remember_each_threads_last_final_write_once() -> None:
    runs = turns.FirstRuns()
    runs.note("t1", True, 0.04)
    assert runs.take("t2") is None  # another task's
    runs.note("t1", True, 0.04)
    assert runs.take("t1") == 0.04
    assert runs.take("t1") is None  # taken
    runs.note("t1", False, 0.04)  # a redelivery found its state stored already
    assert runs.take("t1") is None
    seen: list[float | None] = []
    runs.note("t3", True, 0.05)
    thread = threading.Thread(target=lambda: seen.append(runs.take("t3")))
    thread.start()
    thread.join()
    assert seen == [None] and runs.take("t3") == 0.05  # per thread


def test_a_thread_keeps_the_start_of_its_first_part_of_a_chord() -> None:
    runs = turns.FirstRuns()
    assert runs.began("g1", now=10.0) == 10.0
    assert runs.began("g1", now=11.0) == 10.0  # a later part of the same chord
    assert runs.began("g2", now=12.0) == 12.0  # another chord starts its own schedule
    assert runs.began("g1", now=13.0) == 13.0  # it remembers one chord
