"""Review of the chord tree (s3result/chords/tree.py) under faults, on moto, level by level.

The chord of 130 parts below has a tree of height 3: leaves (level 0), inner nodes of levels 1
and 2, and the root (the chord's counter). Each fault is injected at one level at a time.
Real workers: tests/e2e/test_chord_shapes.py (64+ parts of each canvas shape).
"""

from __future__ import annotations

import random
import re
import time
from typing import Any

import pytest
from celery import states
from celery.exceptions import ChordError

from s3result.chords import geometry as treegeometry
from s3result.errors import RequestTimeout
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer

from .test_chord_cases import lossy, make_app, store
from .test_chord_tree import tree_chord

__all__ = ("store",)

N = 130
LEVELS = ["0", "1", "2", "root"]


def _level_of(target: bytes, gid: str) -> str | None:
    match = re.search(rb"chord-unlock-" + re.escape(gid.encode()) + rb"(?:\.(\d+)\.\d+)?(?:\?|$| )", target)
    if match is None:
        return None
    return "root" if match.group(1) is None else match.group(1).decode()


def objects_under(boto3_client: Any, bucket: str, prefix: str) -> list[str]:
    """The keys under ``prefix``, but the conditional-write verdict kept there (s3result.results.verdict)."""
    pages = boto3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", []) if "/s3result-probe/verdict-" not in o["Key"]]


def test_the_chord_below_has_every_level() -> None:
    assert treegeometry.Geometry(N).height == 3


@pytest.mark.parametrize("level", LEVELS)
def test_lost_reply_of_every_write_at_one_level_counts_once(store: MotoServer, level: str) -> None:
    """Every conditional PUT of one level lands and its reply is lost (each time, retries too):
    the body fires once with every value."""
    url = store.url(f"tree-lost-{level}")
    producer, worker = make_app(url), make_app(url)
    gid = f"g-tree-lost-{level}"
    chord = tree_chord(producer, N, gid)
    lost: list[bytes] = []

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if method == b"PUT" and _level_of(target, gid) == level:
            lost.append(target)
            raise RequestTimeout("reply lost (test)")

    lossy(worker, when)
    order = list(range(N))
    random.Random(level).shuffle(order)
    for i in order:
        chord.finish(worker, i)
    assert lost, "no write of that level was seen"
    assert chord.fired == [([2 * i for i in range(N)],)]


@pytest.mark.parametrize("level", LEVELS)
def test_each_part_delivered_twice_at_one_level(store: MotoServer, level: str) -> None:
    """A part whose climb reached ``level`` is delivered again at once (its first run done):
    counted once, the body fires once."""
    url = store.url(f"tree-twice-{level}")
    producer, worker = make_app(url), make_app(url)
    gid = f"g-tree-twice-{level}"
    chord = tree_chord(producer, N, gid)
    reached: list[str] = []

    def when(method: bytes, target: bytes, headers: Any) -> None:
        lv = _level_of(target, gid)
        if method == b"PUT" and lv is not None:
            reached.append(lv)

    lossy(worker, when)
    again = 0
    for i in range(N):
        reached.clear()
        chord.finish(worker, i)
        if level in reached:
            again += 1
            chord.finish(worker, i)
    assert again > 0
    assert chord.fired == [([2 * i for i in range(N)],)]


def test_results_at_the_limit_not_json_and_failed(store: MotoServer) -> None:
    """A result whose encoding is exactly VALUE_MAX travels in its leaf; one a byte longer, one
    that is not JSON-encodable as text (bytes), and a failure are read at join time."""
    url = store.url("tree-limit")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, 100, "g-tree-limit")
    at_limit = "a" * (treegeometry.VALUE_MAX - 2)  # '"aaa..."': exactly VALUE_MAX characters
    assert len(worker.backend.encode(at_limit)) == treegeometry.VALUE_MAX
    over = "b" * (treegeometry.VALUE_MAX - 1)
    values: list[Any] = [2 * i for i in range(100)]
    values[3], values[4], values[5] = at_limit, over, {"k": [1, 2.5, None, "é\u2028"]}
    reads: list[str] = []
    firing = worker.backend.chords.firing
    real_get_many = firing.read_results
    firing.read_results = lambda ids, **kw: reads.extend(ids) or real_get_many(ids, **kw)
    with chord.recording():
        for i, req in enumerate(chord.requests):
            worker.backend.mark_as_done(req.id, values[i], request=req)
    assert chord.fired == [(values,)]
    assert reads == [chord.requests[4].id]

    chord = tree_chord(producer, 100, "g-tree-limit-fail")
    with chord.recording():
        for i, req in enumerate(chord.requests):
            if i == 99:
                worker.backend.mark_as_failure(req.id, KeyError("part 99"), request=req)
            else:
                worker.backend.mark_as_done(req.id, i, request=req)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE and "part 99" in str(meta["result"]), meta
    assert chord.fired == []


@pytest.mark.parametrize("size", [N - 1, N + 1])
def test_chord_size_that_differs_from_the_header_fails_loudly(store: MotoServer, size: int) -> None:
    url = store.url(f"tree-size-{size}")
    producer = make_app(url)
    producer.backend.chords.tree_from = 8
    from celery import group

    body = producer.tasks["tsum"].s()
    body.freeze()
    header = group(producer.tasks["add"].s(i, i) for i in range(N))
    gid = f"g-tree-size-{size}"
    header.options["task_id"] = gid
    args = header._freeze_group_tasks(group_id=gid, chord=body)
    producer.backend.apply_chord(args, body)
    with pytest.raises(ChordError, match=f"its size \\({size}\\) is not its number of header tasks \\({N}\\)"):
        producer.backend.set_chord_size(gid, size)
    meta = producer.backend.get_task_meta(body.id, cache=False)
    assert meta["status"] == states.FAILURE


def test_etag_producer_and_probe_workers_count_in_a_tree(store: MotoServer) -> None:
    url = store.url("tree-etag")
    producer = make_app(url, conditional_writes="etag")
    workers = [make_app(url, conditional_writes="probe") for _ in range(3)]
    chord = tree_chord(producer, 200, "g-tree-etag")
    for i in range(200):
        chord.finish(workers[i % 3], i)
    assert chord.fired == [([2 * i for i in range(200)],)]


def test_clean_up_leaves_no_object_of_the_chord(store: MotoServer, boto3_client: Any) -> None:
    """After the body is published nothing is left under the prefix but the parts' results."""
    url = store.url("tree-clean")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, N, "g-tree-clean")
    for i in range(N):
        chord.finish(worker, i)
    assert len(chord.fired) == 1
    left = objects_under(boto3_client, store.bucket, "tree-clean/")
    assert [k for k in left if "task-meta" not in k] == []
    assert len(left) == N


class HangingProxy(FaultProxy):
    """A FaultProxy that, while ``hang`` matches a request's head, holds it unanswered (and unapplied)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.hang: Any = None
        self.held = 0
        self.latency = 3600.0

    def _pick(self, head: bytes) -> str | None:
        if self.hang is not None and self.hang(head):
            self.held += 1
            return "latency"
        return super()._pick(head)


@pytest.mark.parametrize("level", ["1", "2", "root"])
def test_store_that_never_answers_mid_climb_fails_the_body_in_bounded_time(store: MotoServer, level: str) -> None:
    """Every request to one level's objects is held unanswered (the store accepts, never replies)
    once the leaves are counted: the part whose climb reaches that level gives up within its
    deadline and the body fails loudly with a ChordError (never PENDING for good)."""
    proxy = HangingProxy(store.host, store.port)
    try:
        url = store.url(f"tree-hang-{level}")
        producer = make_app(url)
        worker = make_app(
            url.replace(f":{store.port}/", f":{proxy.port}/"), read_timeout=0.5, connect_timeout=0.5, max_attempts=2
        )
        gid = f"g-tree-hang-{level}"
        chord = tree_chord(producer, N, gid)
        # Each thread gets its own backend (Celery): the part below runs in this one.
        worker.backend.chords.tree.deadline_s = 2.0
        worker.backend.chords.counter.deadline_s = 2.0
        # Fill every leaf but one part's: then the last part climbs alone through every level.
        for i in range(N - 1):
            chord.finish(worker, i)
        assert chord.fired == []
        proxy.hang = lambda head: _level_of(head.split(b"\r\n", 1)[0], gid) == level
        started = time.monotonic()
        chord.finish(worker, N - 1)
        took = time.monotonic() - started
        proxy.hang = None
        assert proxy.held > 0
        meta = chord.body_meta(producer)
        assert meta["status"] == states.FAILURE, (meta, took)
        assert "ChordError" in repr(meta["result"]) or isinstance(meta["result"], ChordError), meta
        assert chord.fired == []
        assert took < 40, took
    finally:
        proxy.close()


def test_late_climb_through_a_half_cleaned_tree_leaves_nothing(store: MotoServer, boto3_client: Any) -> None:
    """The firing part's clean-up deleted the root and the inner nodes, not yet the leaves, when
    a part that completed a leaf is delivered again: its climb finds its leaf, then no parent.
    It must not create the parent (nobody would ever delete it): it reads the root, finds the
    chord ended, and stops."""
    url = store.url("tree-lateclimb")
    producer, worker = make_app(url), make_app(url)
    chord = tree_chord(producer, N, "g-tree-lateclimb")
    tree = treegeometry.Geometry.from_mark(chord.requests[0].chord["s3result_chord"])
    assert tree is not None
    real_clean = worker.backend.chords.firing.clean_up
    kept: list[str] = []

    def clean_up_but_the_leaves(group_id: str, key: str, deps: Any, nodes: Any = None) -> None:
        leaves = [treegeometry.node_key(key, 0, n) for n in tree.levels[0]]
        kept.extend(leaves)
        real_clean(group_id, key, deps, [n for n in nodes or [] if n not in leaves])

    worker.backend.chords.firing.clean_up = clean_up_but_the_leaves  # type: ignore[method-assign]
    for i in range(N):
        chord.finish(worker, i)
    assert len(chord.fired) == 1
    first = max(tree.leaf_indexes(tree.levels[0][0]))  # parts ran in order: it completed its leaf
    chord.finish(worker, first)
    for key in kept:
        worker.backend.client.delete(key)  # the rest of the clean-up
    left = objects_under(boto3_client, store.bucket, "tree-lateclimb/")
    assert [k for k in left if "task-meta" not in k] == []
    assert len(chord.fired) == 1


def test_join_timeout_in_a_tree_with_a_result_that_did_not_travel(store: MotoServer) -> None:
    """A tree chord's part whose result is too big to travel and was never stored: the join
    waits ``result_chord_join_timeout`` (2 s) for it, then the body fails naming the setting."""
    url = store.url("tree-jt")
    producer, worker = make_app(url), make_app(url)
    worker.conf.result_chord_join_timeout = 2.0
    chord = tree_chord(producer, 100, "g-tree-jt")
    for i in range(99):
        chord.finish(worker, i)
    started = time.monotonic()
    with chord.recording():
        worker.backend.on_chord_part_return(chord.requests[99], states.SUCCESS, "z" * 100)  # stored nowhere
    took = time.monotonic() - started
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "result_chord_join_timeout=2.0" in str(meta["result"]) and "1 of 100" in str(meta["result"]), meta
    assert chord.fired == []
    assert took < 2.0 + 3.0, took


def test_pickled_results_do_not_travel_and_are_read_at_join_time(store: MotoServer) -> None:
    url = store.url("tree-pickle")
    producer = make_app(url)
    worker = make_app(url)
    for app in (producer, worker):
        app.conf.result_serializer = "pickle"
        app.conf.result_accept_content = ["pickle", "json"]
    chord = tree_chord(producer, 100, "g-tree-pickle")
    reads: list[str] = []
    firing = worker.backend.chords.firing
    real_get_many = firing.read_results
    firing.read_results = lambda ids, **kw: reads.extend(ids) or real_get_many(ids, **kw)
    for i in range(100):
        chord.finish(worker, i)
    assert chord.fired == [([2 * i for i in range(100)],)], chord.body_meta(producer)
    assert len(reads) == 100


@pytest.mark.parametrize("level", ["0", "1", "root"])
def test_lost_replies_and_second_deliveries_in_a_fitted_tree(store: MotoServer, level: str) -> None:
    """The tree a producer fits to 130 parts (31 leaves, 4 inner nodes, the root): every
    conditional PUT of one level lands with its reply lost (a leaf's creation without a read
    included), and every fifth part is delivered again at once: one body, every value."""
    url = store.url(f"tree-fit-lost-{level}")
    producer, worker = make_app(url), make_app(url)
    gid = f"g-tree-fit-lost-{level}"
    chord = tree_chord(producer, N, gid, tree_from=2, fitted=True)
    assert treegeometry.Geometry.fit(N).height == 2
    lost: list[bytes] = []

    def when(method: bytes, target: bytes, headers: Any) -> None:
        if method == b"PUT" and _level_of(target, gid) == level:
            lost.append(target)
            raise RequestTimeout("reply lost (test)")

    lossy(worker, when)
    for i in range(N):
        chord.finish(worker, i)
        if i % 5 == 0:
            chord.finish(worker, i)
    assert lost, "no write of that level was seen"
    assert chord.fired == [([2 * i for i in range(N)],)]
