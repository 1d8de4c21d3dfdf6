"""A chord body's ``get()`` reads its header's results together, not one GET after another.

Celery's ``AsyncResult.get`` checks the body's parents before waiting and at every poll, one
result at a time; a store 20 ms away turned that into 10 s a pass at 500 parts, and a failed
part reached the caller that late (unit: tests/test_readahead.py).
"""

from __future__ import annotations

import uuid

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
        # The part fails as a worker would store it; the others are still running.
        backend.store_result(failed.id, PartBroke("part 60 broke"), "FAILURE")
        gets, connections = counting.counts["GET"], counting.connections

        with pytest.raises(Exception, match="part 60 broke") as raised:
            result.get(timeout=30)

        assert type(raised.value).__name__ == "PartBroke"
        read = counting.counts["GET"] - gets
        # One batch of the whole header (once the pending answer noted at sending stops standing,
        # 120 / 50 s), not a GET per part per pass; and the body's polls meanwhile.
        assert read <= PARTS + 15, read
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
