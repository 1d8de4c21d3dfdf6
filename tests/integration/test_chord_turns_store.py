"""Turns (s3result/chords/turns.py) with the real backend on moto: a lost race makes a worker take
turns, and a part's turn is taken before its result is stored (never after: a process killed in
the wait must not leave a stored SUCCESS that nobody counts). Real workers: tests/e2e/test_chord_turns.py."""

from __future__ import annotations

import math
from typing import Any

import pytest
from celery import states

from s3result.chords import turns as turns_module
from s3result.chords.geometry import Geometry, node_key
from s3result.chords.state import MARK
from s3result.testing.store import MotoServer

from .test_chord_cases import lossy, make_app, store
from .test_chord_tree import tree_chord
from .test_chord_tree_faults import _level_of

__all__ = ("store",)


def test_a_lost_race_in_a_leaf_makes_the_worker_take_turns_before_storing(
    store: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(turns_module, "IDLE_TURNS", -math.inf)  # part 9 comes as if its thread was idle
    url = store.url("turns-store")
    producer, worker, racer, observer = (make_app(url) for _ in range(4))
    gid = "g-turns-store"
    chord = tree_chord(producer, 10, gid, fitted=True)  # 3 leaves: parts 0, 3, 6, 9 in column 0
    chord.finish(racer, 0)  # creates the leaf
    raced: list[bytes] = []

    tree = Geometry.from_mark(chord.requests[0].chord[MARK])
    assert tree is not None
    leaf = node_key(racer.backend.store.key(racer.backend.get_key_for_chord(gid)), 0, tree.leaf_of(3))

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if method == b"GET" and _level_of(target, gid) == "0" and not raced:
            raced.append(target)  # another process rewrites the leaf between our read and write
            found = racer.backend.client.get_or_none(leaf)
            assert found is not None
            racer.backend.client.put(leaf, found.body + b" ", content_type="application/json")  # a new ETag

    lossy(worker, when)
    turns = worker.backend.chords.turns
    assert turns.contended_at == -math.inf
    chord.finish(worker, 3)
    assert raced and turns.contended_at > -math.inf, "the lost race was not noted"

    waits: list[tuple[float, str]] = []

    def sleep(seconds: float) -> None:  # what the store holds for part 9 while it waits
        waits.append((seconds, observer.backend.get_task_meta(chord.requests[9].id)["status"]))

    turns._sleep = sleep
    turns.put_s = 0.1  # a turn of MAX_TURN_S, whatever moto's PUTs took
    turns._local.kept.clear()  # part 9 starts the chord's schedule in this thread
    chord.finish(worker, 9)  # column 0's last row: its leaf completes last, 4 turns in
    assert len(waits) == 1 and waits[0][1] == states.PENDING, waits  # not stored yet
    assert waits[0][0] == pytest.approx(4 * turns_module.MAX_TURN_S, abs=0.05)
    assert observer.backend.get_task_meta(chord.requests[9].id)["status"] == states.SUCCESS
    for i in (1, 2, 4, 5, 6, 7, 8):
        chord.finish(racer, i)
    assert chord.fired == [([2 * i for i in range(10)],)]


def test_parts_before_ours_still_to_count_in_the_leaf_are_seen_as_a_race(store: MotoServer) -> None:
    """Not only a lost race: a part that reads its leaf with parts before its own still to count
    ended with them (a fleet's parts ending together), and takes turns from then on."""
    url = store.url("turns-ahead")
    producer, worker, racer = (make_app(url) for _ in range(3))
    chord = tree_chord(producer, 10, "g-turns-ahead", fitted=True)  # parts 0, 3, 6, 9 in column 0
    chord.finish(racer, 6)  # its leaf, with parts 0 and 3 still to count
    turns = worker.backend.chords.turns
    chord.finish(worker, 9)  # reads the leaf: no race lost, two parts ahead
    assert turns.contended_at > -math.inf
    for i in (0, 1, 2, 3, 4, 5, 7, 8):
        chord.finish(racer, i)
    assert chord.fired == [([2 * i for i in range(10)],)]
