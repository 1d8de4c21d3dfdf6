"""Failed chords on moto: the error the caller gets, and what is left in the bucket afterwards.

A part that raises ends the chord when the count completes (its body fails with a ChordError
naming the part's error, and the clean-up deletes the counter, the tree and the saved group); a
part that cannot be counted fails the chord at once, and that clean-up deletes the same. The
time a failure takes to reach a caller is measured in benchmarks/chords.py (``--failing``).
Real workers: tests/e2e/test_chord_shapes.py.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from celery import states

from s3result.testing.store import MotoServer

from .test_chord_cases import Chord, make_app, store
from .test_chord_tree_faults import objects_under

__all__ = ("store",)


def _left(boto3_client: Any, store: MotoServer, prefix: str) -> list[str]:
    """What the chord left under ``prefix``: everything but its parts' and body's results."""
    return [k for k in objects_under(boto3_client, store.bucket, f"{prefix}/") if "task-meta" not in k]


@pytest.mark.parametrize("size", [10, 130])
def test_a_part_that_raises_fails_the_body_with_its_error_and_leaves_nothing(
    store: MotoServer, boto3_client: Any, size: int
) -> None:
    prefix = f"fail-raise-{size}"
    producer, worker = make_app(store.url(prefix)), make_app(store.url(prefix))
    chord = Chord(producer, size, f"g-{prefix}", tree_from=2)
    bad = size // 2
    with chord.recording():
        for i, req in enumerate(chord.requests):
            if i == bad:
                worker.backend.mark_as_failure(req.id, KeyError(f"part {bad} broke"), request=req)
            else:
                worker.backend.mark_as_done(req.id, i, request=req)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert type(meta["result"]).__name__ == "ChordError" and f"part {bad} broke" in str(meta["result"]), meta
    assert chord.fired == []
    part = producer.backend.get_task_meta(chord.requests[bad].id, cache=False)
    assert isinstance(part["result"], KeyError) and str(part["result"]) == f"'part {bad} broke'"
    assert _left(boto3_client, store, prefix) == []


@pytest.mark.parametrize("size", [10, 130])
def test_a_part_that_cannot_be_counted_fails_the_chord_and_the_clean_up_deletes_the_group_and_tree(
    store: MotoServer, boto3_client: Any, size: int
) -> None:
    """A part whose index another task holds (a duplicated group_index) fails the chord at once:
    the body holds a ChordError naming it, and counter, tree nodes and saved group are deleted."""
    prefix = f"fail-count-{size}"
    producer, worker = make_app(store.url(prefix)), make_app(store.url(prefix))
    chord = Chord(producer, size, f"g-{prefix}", tree_from=2)
    for i in range(size // 2):
        chord.finish(worker, i)
    impostor = chord.requests[1]
    impostor.id = "another-task"
    with chord.recording():
        worker.backend.mark_as_done(impostor.id, 0, request=impostor)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    assert "another-task" in str(meta["result"]) or "held by another task" in str(meta["result"]), meta
    assert _left(boto3_client, store, prefix) == []
    for i in range(size // 2, size):  # the parts still running when it failed end quietly
        chord.finish(worker, i)
    assert chord.fired == []


def test_a_failed_chord_whose_clean_up_is_refused_names_what_it_left(
    store: MotoServer, boto3_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """The store refuses the clean-up's DELETE of the saved group (a policy without
    s3:DeleteObject there): the chord still fails with its ChordError, the counter and the tree
    are deleted, and one warning names the object left and what expires it."""
    from s3result.testing.faults import FaultProxy

    prefix = "fail-left"
    with FaultProxy(store.host, store.port, latency=0.0) as proxy:
        proxy.answer("DELETE", "taskset-meta", 403, code="AccessDenied")
        url = store.url(prefix).replace(f":{store.port}/", f":{proxy.port}/")
        producer, worker = make_app(store.url(prefix)), make_app(url)
        chord = Chord(producer, 130, f"g-{prefix}", tree_from=2)
        for i in range(10):
            chord.finish(worker, i)
        impostor = chord.requests[1]
        impostor.id = "another-task"
        with chord.recording(), caplog.at_level(logging.WARNING, logger="s3result"):
            worker.backend.mark_as_done(impostor.id, 0, request=impostor)
    meta = chord.body_meta(producer)
    assert meta["status"] == states.FAILURE, meta
    name = producer.backend.get_key_for_group(f"g-{prefix}")
    group_key = f"{prefix}/{name.decode() if isinstance(name, bytes) else name}"
    assert _left(boto3_client, store, prefix) == [group_key]
    warnings = [r.getMessage() for r in caplog.records if "could not delete" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert group_key in warnings[0] and "lifecycle rule" in warnings[0], warnings[0]
