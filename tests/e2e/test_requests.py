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
from tests.brokers import RedisServer
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


def test_a_child_per_task_takes_no_probe(moto_server: MotoServer, redis_broker: RedisServer, tmp_path: Path) -> None:
    """``worker_max_tasks_per_child=1``: the verdict is taken before the pool forks, then inherited.

    Each task runs in a new child process; a child that probed the store again would cost 7
    requests more per task (PUT, PUT, GET, PUT, PUT, GET, DELETE). On Redis (as on RabbitMQ and
    SQS) the prefork pool tells the main process before each fork (``worker_before_create_process``).
    """
    proxy = CountingProxy("127.0.0.1", moto_server.port)
    url = moto_server.url("per-child").replace(f":{moto_server.port}/", f":{proxy.port}/")
    worker = Worker(
        url,
        tmp_path,
        concurrency=2,
        name="per-child",
        broker=redis_broker,
        namespace=41,
        extra_env={"E2E_MAX_TASKS_PER_CHILD": "1"},
    )
    worker.start()
    try:
        started = proxy.kinds.copy()
        module = point_app_at(moto_server.url("per-child"), Path(worker.broker_dir), redis_broker, 41)
        results = [module.add.delay(i, i) for i in range(20)]
        assert [r.get(timeout=120) for r in results] == [2 * i for i in range(20)]
    finally:
        worker.stop()
        proxy.close()
    # Before the first child: the start check's GET, then the probe's 7 requests, once.
    assert started["GET other"] + started["GET celery-task-meta"] <= 3, (started, worker.tail())
    assert sum(started.values()) <= 10, (started, worker.tail())
    assert proxy.kinds - started == {"PUT celery-task-meta": 20}, (proxy.kinds - started, worker.tail())
