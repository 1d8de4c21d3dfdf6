"""The chord lease with real workers on Redis: the worker of the completing part is SIGKILLed
right after the completing write, before it publishes the body. The broker delivers that part
again (Redis visibility timeout, 5 s here) to the other worker, which finds its part completed
the set and, after ``chord_lease`` (lowered to 2 s in the workers), takes over and publishes.

E2E_CHORD_LEASE_AFTER=1 also runs the window docs/guarantees.md names as not covered (killed after
publishing, before deleting the counter: the body then runs twice), and reports its count.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from celery import chord

from s3result.testing.store import MotoServer
from tests.brokers import RedisServer, Tuned

from .conftest import Worker, for_worker

pytestmark = pytest.mark.e2e

WHEN = ["before", "climb"] + (["after"] if os.environ.get("E2E_CHORD_LEASE_AFTER") else [])
# "climb": a chord of 70 parts (counted in a tree) whose worker is SIGKILLed right after a part
# completed its leaf, before counting the leaf in its parent: the redelivery climbs again.
SIZE = {"before": 6, "after": 6, "climb": 70}


@pytest.mark.parametrize("when", WHEN)
def test_completing_worker_killed_around_publishing(
    when: str, redis_broker: RedisServer, moto_server: MotoServer, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    calls.mkdir()
    broker = Tuned(redis_broker, visibility_timeout=5, unacked_restore_interval=1, unacked_restore_throttle=1)
    env = {
        "E2E_CALLS_DIR": str(calls),
        "E2E_KILL_MARKER": str(tmp_path / "killed"),
        "E2E_KILL_FIRING": when,
        "E2E_CHORD_LEASE": "2",
        "E2E_TEST_PGRP": str(os.getpgrp()),
    }
    url = moto_server.url(prefix=f"lease-{when}-{uuid.uuid4().hex[:6]}") + "?conditional_writes=etag"
    ns = 900 + len(when)
    workers = [
        Worker(url, tmp_path, name=f"lease-{when}-{i}", broker=broker, namespace=ns, extra_env=env, new_session=True)
        for i in range(2)
    ]
    for w in workers:
        w.start()
    try:
        module = for_worker(workers[0])
        marker = f"lease-{uuid.uuid4().hex[:8]}"
        size = SIZE[when]
        res = chord(module.part.s(i) for i in range(size))(module.collect.s(marker))
        try:
            assert res.get(timeout=90, interval=0.2) == sum(range(size))
        except Exception:
            print("\n".join(w.tail() for w in workers))
            raise
        assert (tmp_path / "killed").exists(), "nothing was killed"
        # Room for a second firing: "after" needs the redelivery (5 s) and the lease (2 s) first.
        time.sleep(4.0 if when == "before" else 12.0)
        runs = sorted(calls.glob(f"{marker}.*"))
        if when != "after":
            assert len(runs) == 1, f"chord body ran {len(runs)} times"
        else:
            print(f"killed after publishing, before deleting the counter: the body ran {len(runs)} times")
        assert runs[0].read_text() == ",".join(map(str, range(size)))
    finally:
        for w in workers:
            w.stop()
