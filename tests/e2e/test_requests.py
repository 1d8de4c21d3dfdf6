"""Requests per task, counted at the wire between a real prefork worker and moto.

The worker talks to the store through a counting proxy; the test reads results directly, so
the proxy sees the worker's requests only. See tests/integration/test_etag_memory.py for the
same promise in one process, under a lost reply.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3result.results.precondition import PROBE_PREFIX
from s3result.testing.faults import FaultProxy
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


def test_a_probe_that_failed_at_start_is_taken_before_a_later_fork(
    moto_server: MotoServer, redis_broker: RedisServer, tmp_path: Path
) -> None:
    """The store answers 503 to the probe while the worker starts (both started at once), then heals.

    The start check warns and the worker starts; the verdict is then taken again in the main
    process before a later fork, so the children made after it inherit it instead of probing
    once per task (``worker_max_tasks_per_child=1``: 7 requests more per task).
    """
    counting = CountingProxy("127.0.0.1", moto_server.port)
    faults = FaultProxy("127.0.0.1", counting.port, latency=0.0)
    faults.answer(
        "PUT", PROBE_PREFIX, 503, code="ServiceUnavailable", times=3
    )  # the start check's probe, 3 attempts (a failing store, not throttling: SlowDown is waited out)
    url = moto_server.url("late-probe").replace(f":{moto_server.port}/", f":{faults.port}/")
    worker = Worker(
        url,
        tmp_path,
        concurrency=2,
        name="late-probe",
        broker=redis_broker,
        namespace=42,
        extra_env={"E2E_MAX_TASKS_PER_CHILD": "1"},
    )
    worker.start()
    try:
        assert faults.stats["canned"] == 3, worker.tail()
        module = point_app_at(moto_server.url("late-probe"), Path(worker.broker_dir), redis_broker, 42)
        total, later = 0, None
        for batch, size in enumerate((2, 6, 6, 6)):
            if batch == 2:  # every child alive now was forked after the verdict was taken
                later = counting.kinds.copy()
            results = [module.add.delay(i, batch) for i in range(size)]
            assert [r.get(timeout=120) for r in results] == [i + batch for i in range(size)]
            total += size
            time.sleep(2)  # past the first pause before the main process tries again
    finally:
        worker.stop()
        faults.close()
        counting.close()
    assert later is not None
    # The children forked before the verdict (2 at start, 2 after the first batch) probe for
    # themselves, 4 PUTs each, and the main process once; none after.
    assert counting.kinds["PUT other"] <= 5 * 4, (counting.kinds, worker.tail())
    assert {k: n for k, n in (counting.kinds - later).items() if k.endswith("other")} == {}, counting.kinds - later
    assert counting.kinds["PUT celery-task-meta"] == total, (counting.kinds, worker.tail())
    assert worker.tail(100_000).count("conditional writes work") <= 5, worker.tail()


def test_a_later_worker_sends_two_requests_before_its_first_result(
    moto_server: MotoServer, redis_broker: RedisServer, tmp_path: Path
) -> None:
    """The first worker on a prefix probes and stores the verdict; the next one reads it.

    A later worker's start check is the verdict's GET and one conditional PUT that confirms it
    (and that the key may write), in the main process before the pool forks (a broker whose
    prefork pool says so: Redis here); then its first result. Counted at the wire, in order.
    """
    proxy = CountingProxy("127.0.0.1", moto_server.port, record_times=True)
    url = moto_server.url("later-worker").replace(f":{moto_server.port}/", f":{proxy.port}/")
    try:
        first = Worker(url, tmp_path / "first", concurrency=1, name="first-w", broker=redis_broker, namespace=44)
        first.start()  # its start check probes the store and stores the verdict
        first.stop()
        probed = len(proxy.requests)
        later = Worker(url, tmp_path / "later", concurrency=1, name="later-w", broker=redis_broker, namespace=44)
        later.start()
        try:
            module = point_app_at(moto_server.url("later-worker"), Path(later.broker_dir), redis_broker, 44)
            assert module.add.delay(2, 3).get(timeout=60) == 5
        finally:
            later.stop()
    finally:
        proxy.close()
    assert probed >= 8, proxy.requests  # the verdict's GET, the probe's 7, the verdict's PUT
    sent = [(method, target) for _, method, target in proxy.requests[probed:]]
    firsts = [i for i, (method, target) in enumerate(sent) if method == "PUT" and "celery-task-meta-" in target]
    assert firsts, (sent, later.tail())
    before = sent[: firsts[0]]
    assert [method for method, _ in before] == ["GET", "PUT"], (before, later.tail())
    assert all("s3result-probe/verdict-" in target for _, target in before), before
