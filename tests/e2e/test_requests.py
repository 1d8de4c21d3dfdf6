"""Requests per task, counted at the wire between a real prefork worker and moto.

The worker talks to the store through a counting proxy; the test reads results directly, so
the proxy sees the worker's requests only. See tests/integration/test_etag_memory.py for the
same promise in one process, under a lost reply.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from s3result.testing.proxy import CountingProxy
from s3result.testing.store import MotoServer
from tests.e2e.conftest import Worker, point_app_at

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def counted_worker(
    moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, CountingProxy]]:
    proxy = CountingProxy("127.0.0.1", moto_server.port)
    tmp = tmp_path_factory.mktemp("counted")
    url = moto_server.url("counted").replace(f":{moto_server.port}/", f":{proxy.port}/")
    worker = Worker(url, tmp, concurrency=1, name="counted")
    worker.start()
    try:
        yield worker, proxy
    finally:
        worker.stop()
        proxy.close()


def test_task_track_started_costs_two_puts_and_no_get(
    counted_worker: tuple[Worker, CountingProxy], moto_server: MotoServer
) -> None:
    worker, proxy = counted_worker
    module = point_app_at(moto_server.url("counted"), Path(worker.broker_dir))
    module.tracked.delay(0).get(timeout=60)  # the worker's child probes the store on its first write
    before = proxy.kinds.copy()
    results = [module.tracked.delay(i) for i in range(5)]
    assert [r.get(timeout=60) for r in results] == list(range(5))
    meta = {k: n for k, n in (proxy.kinds - before).items() if k.endswith("celery-task-meta")}
    assert meta == {"PUT celery-task-meta": 10}, (proxy.kinds - before, worker.tail())
