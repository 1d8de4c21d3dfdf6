"""Real prefork workers against one throttled store: every result lands, none is lost.

Two workers (prefork, ``E2E_FLEET_CONCURRENCY`` children each, 4 by default here; the
benchmark runs 2 x 12: ``python -m benchmarks.throttle --fleet``) on Redis store their results
through the testing kit's throttling proxy, which lets 30 PUT/s through and answers 503
SlowDown above it. Each child paces itself on its own answers; the producer then reads every
result back. Pure logic: tests/test_limiter.py; one process: tests/integration/test_throttling.py.
"""

from __future__ import annotations

import os

from benchmarks.throttle_fleet import run_fleet
from s3result.testing.store import MotoServer


def test_a_throttled_fleet_loses_no_result(moto_server: MotoServer) -> None:
    concurrency = int(os.environ.get("E2E_FLEET_CONCURRENCY", "4"))
    figures = run_fleet(moto_server, rate=30, workers=2, concurrency=concurrency, tasks=600)
    assert figures["slowdowns"] > 0, figures  # the store really throttled the fleet
    assert figures["lost"] == 0, figures
    assert figures["raised_in_workers"] == 0, figures
