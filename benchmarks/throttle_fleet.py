"""A fleet against one throttled store: real Celery workers (prefork) on Redis, one throttling proxy.

    python -m benchmarks.throttle --fleet [--workers 2] [--concurrency 12] [--tasks 3000] [--rate 40]

Every child process paces its own writes from its own answers (nothing is shared between
processes but the store). The producer sends ``--tasks`` tasks (``tests.e2e.app.add``), then
reads every result back (reads are unlimited). Reported: results lost (not SUCCESS with the
right value after the run), stores/s over the busy period as a fraction of the limit, SlowDown
answers per success counted at the proxy. tests/e2e/test_throttling.py runs a smaller fleet.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer


def run_fleet(
    moto: MotoServer, rate: float, workers: int, concurrency: int, tasks: int, burst: float | None = None
) -> dict[str, Any]:
    """Start the fleet behind a throttling proxy, run ``tasks`` tasks, stop it; the figures."""
    from tests.brokers import RedisServer
    from tests.e2e.conftest import Worker, point_app_at

    load = os.getloadavg()
    proxy = FaultProxy(moto.host, moto.port, latency=0.0, rate=rate, burst=burst)
    prefix = f"fleet-{int(time.time())}"
    url = moto.url(prefix).replace(f":{moto.port}/", f":{proxy.port}/")
    tmp = Path(tempfile.mkdtemp(prefix="s3result-fleet-"))
    with RedisServer() as redis:
        fleet = [
            Worker(url, tmp, concurrency=concurrency, name=f"fleet{i}", broker=redis, namespace=7)
            for i in range(workers)
        ]
        try:
            for w in fleet:
                w.start()
            module = point_app_at(moto.url(prefix), Path(fleet[0].broker_dir), redis, 7)
            before = proxy.stats.copy()
            started = time.monotonic()
            results = [module.add.delay(i, 1) for i in range(tasks)]
            lost = 0
            for i, result in enumerate(results):
                try:
                    if result.get(timeout=max(60.0, tasks / rate * 3)) != i + 1:
                        lost += 1
                except Exception:  # noqa: BLE001 - counted: a result lost
                    lost += 1
            busy = time.monotonic() - started
            logs = "".join(w.tail(200_000) for w in fleet)
        finally:
            for w in fleet:
                w.stop()
            proxy.close()
    passed = proxy.stats["rate_passed"] - before["rate_passed"]
    slowdowns = proxy.stats["slowdown"] - before["slowdown"]
    return {
        "rate": rate,
        "workers": workers,
        "concurrency": concurrency,
        "tasks": tasks,
        "lost": lost,
        "busy": busy,
        "stores_per_s": tasks / busy,
        "puts_passed": passed,
        "slowdowns": slowdowns,
        "raised_in_workers": logs.count("Throttled") + logs.count("retry quota exhausted"),
        "load": load,
        "load_after": os.getloadavg(),
    }


def measure_fleet(rate: float, workers: int, concurrency: int, tasks: int, burst: float | None) -> dict[str, Any]:
    with MotoServer(bucket="s3result-fleet") as moto:
        return run_fleet(moto, rate, workers, concurrency, tasks, burst)


def fleet_report(r: dict[str, Any], command: str) -> str:
    return "\n".join(
        [
            f"Command: `{command}`",
            "",
            f"{r['workers']} workers x prefork {r['concurrency']} on Redis, {r['tasks']} tasks, one store allowing "
            f"{r['rate']:g} PUT/s. Load average before: {', '.join(f'{x:.1f}' for x in r['load'])}; after: "
            f"{', '.join(f'{x:.1f}' for x in r['load_after'])} (2 cores, shared).",
            "",
            "| results lost | stores/s | fraction of limit | SlowDowns per success | store errors in worker logs |",
            "|---|---|---|---|---|",
            f"| {r['lost']} | {r['stores_per_s']:.1f} | {r['stores_per_s'] / r['rate']:.2f} | "
            f"{r['slowdowns'] / max(r['puts_passed'], 1):.3f} | {r['raised_in_workers']} |",
        ]
    )
