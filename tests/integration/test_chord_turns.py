"""Turns (s3result/chords/turns.py) wired through the engine, against moto, with the waits recorded
instead of slept: which part waits, at which node, for how many turns.

Counted at the wire (how many races turns save): tests/integration/test_chord_tree_counts.py and
benchmarks/RESULTS.md. A count on a machine this busy moves with the load; what is held here
does not.
"""

from __future__ import annotations

import math
from typing import Any

from s3result.chords import turns
from s3result.chords.geometry import Geometry
from s3result.chords.rootcounter import MARK
from s3result.testing.store import MotoServer

from .test_chord_cases import Chord, make_app


def _one_turn(seconds: float) -> bool:
    """A turn: a power of two, or the longest one (less the moment between taking the part's
    start and computing its wait)."""
    nearest = min(turns.MAX_TURN_S, 2.0 ** round(math.log2(seconds)))
    return 0 <= nearest - seconds < 0.001


def _recording(worker: Any) -> tuple[list[tuple[int, float]], list[float]]:
    """Record the engine's waits (part index, seconds) in the leaves, and the root's, unslept."""
    engine = worker.backend.chords
    leaf: list[tuple[int, float]] = []
    root: list[float] = []
    current = {"i": -1}
    engine.tree.sleep = lambda s: leaf.append((current["i"], s))
    engine.counter._sleep = root.append
    real_finish = Chord.finish

    def finish(chord: Chord, app: Any, i: int) -> None:
        current["i"] = i
        engine._first_runs = turns.FirstRuns()  # each part as the first its process runs of the chord
        real_finish(chord, app, i)

    Chord.finish = finish  # type: ignore[method-assign]
    return leaf, root


def test_the_parts_of_a_small_chord_wait_for_their_rows_and_the_root_in_turn(moto_server: MotoServer) -> None:
    url = moto_server.url("turns")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 16, "g-turns-16", tree_from=2)
    tree = Geometry.from_mark(chord.requests[0].chord[MARK])
    assert tree is not None and (tree.stripes, tree.n, len(tree.levels[0])) == (2, 16, 2)  # 2 leaves of 8 rows
    real_finish = Chord.finish
    try:
        leaf, root = _recording(worker)
        for i in range(16):
            chord.finish(worker, i)
    finally:
        Chord.finish = real_finish  # type: ignore[method-assign]
    assert chord.fired == [([2 * i for i in range(16)],)]
    # Row 0 of each leaf does not wait; part i, in row i // 2, waits that many turns.
    assert sorted(i for i, _s in leaf) == list(range(2, 16)), leaf
    for i, seconds in leaf:
        assert _one_turn(seconds / (i // 2)), (i, seconds)
    assert len({round(seconds / (i // 2), 3) for i, seconds in leaf}) <= 2  # the parts agree on a turn
    # The two leaves complete together at the chord's end: the second child of the root waits one turn.
    assert len(root) == 1 and _one_turn(root[0]), root


def test_a_redelivered_part_and_a_large_chords_parts_do_not_wait(moto_server: MotoServer) -> None:
    url = moto_server.url("turns-none")
    producer, worker = make_app(url), make_app(url)
    large = Chord(producer, 200, "g-turns-200", tree_from=2)  # leaves of 6-7 rows, a fan-in of 8 above
    small = Chord(producer, 10, "g-turns-again", tree_from=2)
    real_finish = Chord.finish
    try:
        leaf, root = _recording(worker)
        for i in range(200):
            large.finish(worker, i)
        assert (leaf, root) == ([], [])
        for i in range(9):
            small.finish(worker, i)
        assert sorted(i for i, _s in leaf) == list(range(1, 9))
        leaf.clear()
        small.finish(worker, 4)  # delivered again: its state is stored already, no first run
        assert leaf == []
    finally:
        Chord.finish = real_finish  # type: ignore[method-assign]
    assert large.fired == [([2 * i for i in range(200)],)]
    assert small.fired == []
