"""Backend paths the end-to-end suites rarely take, each driven on a real moto server: a chord
whose firing part cannot restore, join or publish; joins and waits served from the cache;
``join_native``'s per-message callback; the tables that keep a bounded number of chords.
Cross-reference: tests/integration/test_chord_cases.py (the Chord helper), tests/e2e/test_chords.py."""

from __future__ import annotations

import uuid
from typing import Any
from unittest import mock

import pytest
from celery import states
from celery.canvas import Signature
from celery.result import GroupResult

from s3result.testing.store import MotoServer
from tests.integration.test_chord_cases import Chord, make_app


def _fired_error(chord: Chord, app: Any) -> str:
    meta = chord.body_meta(app)
    assert meta["status"] == states.FAILURE, meta
    return repr(meta["result"])


def test_a_chord_whose_group_cannot_be_restored_fails_its_body(moto_server: MotoServer) -> None:
    url = moto_server.url(f"paths-{uuid.uuid4().hex[:8]}")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 2, "g-restore")
    chord.finish(worker, 0)
    with mock.patch.object(type(worker.backend), "restore_group", side_effect=RuntimeError("boom")):
        chord.finish(worker, 1)
    assert "Cannot restore group" in _fired_error(chord, producer)
    assert chord.fired == []


def test_a_chord_whose_group_is_gone_fails_its_body(moto_server: MotoServer) -> None:
    url = moto_server.url(f"paths-{uuid.uuid4().hex[:8]}")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 2, "g-gone")
    chord.finish(worker, 0)
    worker.backend.delete_group("g-gone")
    chord.finish(worker, 1)
    assert "no longer exists" in _fired_error(chord, producer)


def test_a_chord_whose_body_cannot_be_published_fails_its_body(moto_server: MotoServer) -> None:
    url = moto_server.url(f"paths-{uuid.uuid4().hex[:8]}")
    producer, worker = make_app(url), make_app(url)
    chord = Chord(producer, 2, "g-publish")
    chord.finish(worker, 0)
    with mock.patch.object(Signature, "delay", side_effect=OSError("broker down")):
        req = chord.requests[1]
        worker.backend.mark_as_done(req.id, 2, request=req)
    assert "Callback error" in _fired_error(chord, producer)


def test_joins_and_waits_are_served_from_the_cache(moto_server: MotoServer) -> None:
    app = make_app(moto_server.url(f"paths-{uuid.uuid4().hex[:8]}"))
    app.conf.result_cache_max = 100  # Celery caches ready results only when this is set
    ids = [str(uuid.uuid4()) for _ in range(3)]
    for i, task_id in enumerate(ids):
        app.backend.store_result(task_id, i, states.SUCCESS)
    group = GroupResult("g-cache", [app.AsyncResult(t) for t in ids], app=app)
    seen: list[Any] = []
    assert group.join_native(timeout=5, on_message=seen.append) == [0, 1, 2]
    assert sorted(m["result"] for m in seen) == [0, 1, 2]
    # Read again: every result comes from the backend's cache, none from the store.
    with mock.patch.object(app.backend.client, "get_each", side_effect=AssertionError("read again")):
        assert dict(app.backend.get_many(ids, timeout=1)).keys() == set(ids)
        assert app.backend.wait_for(ids[0], timeout=1)["result"] == 0


@pytest.mark.parametrize("table", ["_DECISIONS", "_SIZES"])
def test_per_process_chord_tables_stay_bounded(table: str) -> None:
    from s3result.chords import memory as chord_module  # the chord methods' process-wide tables

    kept = chord_module._CHORD_SIZES_KEPT
    entries: dict[str, Any] = getattr(chord_module, table).get()
    saved = dict(entries)
    try:
        for i in range(kept + 5):
            if table == "_DECISIONS":
                chord_module.remember_decision(f"bounded-{i}", True)
            else:
                chord_module.remember_size(f"bounded-{i}", 1)
        assert len(entries) == kept
        assert "bounded-0" not in entries and f"bounded-{kept + 4}" in entries
    finally:
        entries.clear()
        entries.update(saved)


def test_a_host_name_under_a_deadline_tries_each_address_then_fails() -> None:
    """``localhost`` resolves to more than one address here; nothing listens on any of them."""
    import time

    from s3result.errors import ConnectError
    from s3result.results import config
    from s3result.s3.client import S3Client
    from s3result.testing.store import free_port

    port = free_port()
    client = S3Client(config.build(url=f"s3result+http://AK:SK@localhost:{port}/bucket/p", environ={}).s3)
    started = time.monotonic()
    with pytest.raises(ConnectError):
        client.get_or_none("p/k", deadline=time.monotonic() + 2, attempts=1)
    assert time.monotonic() - started < 2.5
