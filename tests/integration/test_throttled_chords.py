"""Chord counting keeps exactly-once while the store throttles its writes.

A native chord of 130 parts, counted from several threads of one worker process through the
testing kit's throttling proxy (``FaultProxy(rate=...)``) in front of moto: every part is
delivered twice, in a shuffled order, and in one run every conditional PUT's reply may be lost
as well (the store applied it or refused it; the writer cannot tell; a part whose every attempt
lost its reply is delivered again, as an acks_late task would be). The body fires once, with
every value, and no counter, leaf or node is left behind. Both counting layouts: the root
counter (a small chord's) and the combining tree (a large chord's). Throttling without chords:
tests/integration/test_throttling.py; the tree under faults: tests/integration/test_chord_tree_faults.py.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer

from .test_chord_cases import Chord, make_app
from .test_chord_tree import tree_chord
from .test_chord_tree_faults import objects_under

N = 130
THREADS = 6


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    p = FaultProxy(moto_server.host, moto_server.port, latency=0.0, seed=29)
    yield p
    p.close()


@pytest.mark.parametrize("lost_replies", [False, True], ids=["throttled", "throttled-lost-replies"])
@pytest.mark.parametrize("layout", ["root", "tree"])
def test_a_throttled_chord_counted_from_threads_fires_once_and_leaves_nothing(
    moto_server: MotoServer, proxy: FaultProxy, boto3_client: Any, layout: str, lost_replies: bool
) -> None:
    prefix = f"throttled-chord-{layout}-{int(lost_replies)}"
    producer = make_app(moto_server.url(prefix))
    worker = make_app(moto_server.url(prefix).replace(f":{moto_server.port}/", f":{proxy.port}/"))
    gid = f"g-{prefix}"
    chord = tree_chord(producer, N, gid) if layout == "tree" else Chord(producer, N, gid)
    proxy.throttle(60)  # writes over 60/s (6 at once) get 503 SlowDown
    if lost_replies:
        proxy.set_faults(lose_conditional_reply=0.15)
    deliveries = list(range(N)) * 2  # every part delivered twice
    random.Random(layout).shuffle(deliveries)
    raised: list[Exception] = []

    def deliver(share: list[int]) -> None:
        backend = worker.backend  # thread-local, as in a threads pool; the client is the process's
        for i in share:
            req = chord.requests[i]
            for _ in range(5):
                try:
                    backend.mark_as_done(req.id, 2 * i, request=req)
                    break
                except Exception as exc:  # noqa: BLE001 - every attempt's reply lost: delivered again
                    raised.append(exc)
            else:
                raise AssertionError(f"part {i} never stored: {raised[-1]}")

    with chord.recording():  # patched once for every thread (mock.patch is not thread-safe)
        threads = [threading.Thread(target=deliver, args=(deliveries[k::THREADS],)) for k in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    if not lost_replies:
        assert not raised, (len(raised), raised[:3])  # throttling alone fails no store
    assert proxy.stats["slowdown"] > 0, proxy.stats  # the store really throttled the counting
    if lost_replies:
        assert proxy.stats["lose_conditional_reply"] > 0, proxy.stats
    assert chord.fired == [([2 * i for i in range(N)],)]
    assert chord.unlocks == []
    left = objects_under(boto3_client, moto_server.bucket, f"{prefix}/")
    assert [k for k in left if "task-meta" not in k] == [], "a counter, leaf or node was left behind"
    assert len(left) == N
