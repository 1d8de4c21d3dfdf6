"""A chord body's ``get()`` reads its header's results together, not one GET after another.

Celery's ``AsyncResult.get`` checks the body's parents before waiting and at every poll, one
result at a time; a store 20 ms away turned that into 10 s a pass at 500 parts, and a failed
part reached the caller that late (unit: tests/test_readahead.py).
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from celery import Celery, chord, group

from s3result.testing.faults import FaultProxy
from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer

PARTS = 120


class PartBroke(Exception):
    """The error a header part raised."""


def test_a_failed_part_reaches_the_caller_through_one_concurrent_read_of_the_header(
    moto_server: MotoServer,
) -> None:
    slow = FaultProxy("127.0.0.1", moto_server.port, latency=0.02)
    slow.set_faults(latency=1.0)  # every request, as a store 20 ms away
    counting = CountingProxy("127.0.0.1", slow.port)
    url = moto_server.url(f"readahead-{uuid.uuid4().hex[:8]}").replace(
        f"127.0.0.1:{moto_server.port}", f"127.0.0.1:{counting.port}"
    )
    app = Celery("readahead", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    app.conf.result_backend_thread_safe = True
    try:
        backend = app.backend
        part = app.signature("part")
        result = chord(group(part.clone(args=(i,)) for i in range(PARTS)))(app.signature("body"))
        header = result.parent
        failed = header.results[PARTS // 2]
        # The part fails as a worker would store it, while the caller waits: after Celery's check
        # before the wait (a pass over the header, read ahead); the others are still running.
        later = threading.Timer(3.5, backend.store_result, (failed.id, PartBroke("part 60 broke"), "FAILURE"))
        gets, connections = counting.counts["GET"], counting.connections
        later.start()
        with pytest.raises(Exception, match="part 60 broke") as raised:
            result.get(timeout=30)
        later.join()

        assert type(raised.value).__name__ == "PartBroke"
        read = counting.counts["GET"] - gets
        # The check before the wait, then a batch of the header per 2.4 s (pending answers stand
        # 120 / 50 s), not the header at every poll's check; and the body's polls meanwhile.
        assert read <= 4 * PARTS + 30, read
        # Read concurrently over the pool: sequential reads reuse one keep-alive connection.
        assert counting.connections - connections >= 4, counting.connections - connections
    finally:
        app.close()
        counting.close()
        slow.close()


def test_a_caller_waiting_on_a_large_chord_does_not_read_its_header_every_poll(moto_server: MotoServer) -> None:
    """Pending header results stand for a while (a second per 50 of them): 2 s of polls every
    0.1 s read the header about once, not 20 times."""
    counting = CountingProxy("127.0.0.1", moto_server.port)
    url = moto_server.url(f"readahead-{uuid.uuid4().hex[:8]}").replace(
        f"127.0.0.1:{moto_server.port}", f"127.0.0.1:{counting.port}"
    )
    app = Celery("readahead", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    try:
        app.backend.ensure_chords_allowed()
        result = chord(group(app.signature("part").clone(args=(i,)) for i in range(PARTS)))(app.signature("body"))
        gets = counting.counts["GET"]
        with pytest.raises(Exception, match="timed out"):
            result.get(timeout=2, interval=0.1)
        read = counting.counts["GET"] - gets
        polls_of_the_body = 2 / 0.1
        assert read <= 3 * PARTS + polls_of_the_body + 5, read
    finally:
        app.close()
        counting.close()


def test_a_header_result_read_outside_a_wait_is_read_from_the_store(moto_server: MotoServer) -> None:
    """Only Celery's checks during a wait use the read-ahead: ``state`` of a part that has just
    failed is read from the store, never a pending answer a batch read a moment ago."""
    app = Celery("readahead", broker="memory://", set_as_current=False)
    app.conf.result_backend = moto_server.url(f"readahead-{uuid.uuid4().hex[:8]}")
    try:
        result = chord(group(app.signature("part").clone(args=(i,)) for i in range(PARTS)))(app.signature("body"))
        with pytest.raises(Exception, match="timed out"):
            result.get(timeout=0.5)  # batches of the header read as pending, standing for 2.4 s
        part = result.parent.results[3]
        app.backend.store_result(part.id, PartBroke("part 3 broke"), "FAILURE")
        assert part.state == "FAILURE"
    finally:
        app.close()


class InFlight:
    """The most GETs the caller had in flight at once, and how many it sent."""

    def __init__(self, client: Any) -> None:
        self.now = self.most = self.gets = 0
        self._lock = threading.Lock()
        self._get = client.get_or_none

        def get_or_none(key: str, **kwargs: Any) -> Any:
            with self._lock:
                self.now += 1
                self.gets += 1
                self.most = max(self.most, self.now)
            try:
                return self._get(key, **kwargs)
            finally:
                with self._lock:
                    self.now -= 1

        client.get_or_none = get_or_none


def test_the_check_before_the_wait_reads_the_header_ahead_concurrently(moto_server: MotoServer) -> None:
    """Celery's check of a body's parents before ``get()`` waits: a part that failed already is
    found by a pass that reads the header ahead, concurrently, not by 61 GETs one after another,
    and the pass reads at most twice what it uses (here: up to the failed part)."""
    slow = FaultProxy("127.0.0.1", moto_server.port, latency=0.02)
    slow.set_faults(latency=1.0)
    url = moto_server.url(f"readahead-{uuid.uuid4().hex[:8]}").replace(
        f"127.0.0.1:{moto_server.port}", f"127.0.0.1:{slow.port}"
    )
    app = Celery("readahead", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    try:
        backend = app.backend
        result = chord(group(app.signature("part").clone(args=(i,)) for i in range(PARTS)))(app.signature("body"))
        bad = PARTS // 2
        backend.store_result(result.parent.results[bad].id, PartBroke("part 60 broke"), "FAILURE")
        reads = InFlight(backend.client)
        with pytest.raises(PartBroke, match="part 60 broke"):
            result.get(timeout=30)
        assert reads.most >= 4, reads.most  # one after another: 1
        assert bad + 1 <= reads.gets <= 2 * (bad + 1), reads.gets
    finally:
        app.close()
        slow.close()


def test_reads_outside_a_wait_after_a_pass_are_the_store_s(moto_server: MotoServer) -> None:
    """A loop on one part's ``ready()`` reads that part alone, and a part read right after the
    pass that stopped at a failed part is read again, not taken from what the pass read ahead."""
    counting = CountingProxy("127.0.0.1", moto_server.port)
    url = moto_server.url(f"readahead-{uuid.uuid4().hex[:8]}").replace(
        f"127.0.0.1:{moto_server.port}", f"127.0.0.1:{counting.port}"
    )
    app = Celery("readahead", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    try:
        backend = app.backend
        result = chord(group(app.signature("part").clone(args=(i,)) for i in range(PARTS)))(app.signature("body"))
        parts = result.parent.results
        gets = counting.counts["GET"]
        for _ in range(20):
            assert not parts[7].ready()
        assert counting.counts["GET"] - gets == 20

        backend.store_result(parts[5].id, PartBroke("part 5 broke"), "FAILURE")
        with pytest.raises(PartBroke):
            result.get(timeout=30)  # the pass read parts 6 and 7 ahead, as pending
        backend.store_result(parts[6].id, PartBroke("part 6 broke"), "FAILURE")
        assert parts[6].state == "FAILURE"
    finally:
        app.close()
        counting.close()
