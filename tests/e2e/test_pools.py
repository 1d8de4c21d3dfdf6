"""One client per process, whatever Celery's pool: counted at the wire with real workers.

Celery's ``app.backend`` is thread-local, and greenlet-local once gevent or eventlet patch the
thread module, so each thread or greenlet of a worker builds its own backend. The client (pool,
credentials, retry quota, probe verdict) must still be one per process (s3result/results/clients.py):
a worker of 100 greenlets running thousands of tasks opens at most ``max_connections`` TCP
connections to the store and fetches its credentials once. The store is reached through a
counting proxy (connections and requests), the credentials come from a local container
credentials endpoint that counts its fetches. Unit side: tests/test_clients.py.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from celery.result import ResultSet

from s3result.testing.proxy import CountingProxy
from tests.brokers import RedisServer
from tests.fakes import FakeServer, creds_json

from .conftest import Worker, point_app_at

pytestmark = pytest.mark.e2e

TASKS = int(os.environ.get("E2E_POOL_TASKS", "2000"))  # E2E_POOL_TASKS=5000 for the long run
MAX_CONNECTIONS = 10


@pytest.fixture
def credentials(ceph_target: Any) -> Iterator[FakeServer]:
    """A container credentials endpoint (ECS/EKS style) handing out the store's keys."""
    server = FakeServer(lambda *_: (200, creds_json(ceph_target.access_key, ceph_target.secret_key, token="")))
    yield server
    server.close()


@pytest.mark.parametrize(
    ("pool", "concurrency"),
    [("gevent", 100), ("eventlet", 100), ("threads", 8)],
)
def test_one_pool_and_one_credential_fetch_per_worker_process(
    pool: str,
    concurrency: int,
    ceph_target: Any,
    redis_broker: RedisServer,
    credentials: FakeServer,
    tmp_path: Path,
) -> None:
    store = urlsplit(ceph_target.endpoint)
    proxy = CountingProxy("127.0.0.1", int(store.port or 80))
    prefix = f"pools-{pool}"
    # No keys in the URL: the worker's credential chain finds the container endpoint.
    worker_url = (
        f"s3result+http://127.0.0.1:{proxy.port}/{ceph_target.bucket}/{prefix}"
        f"?max_connections={MAX_CONNECTIONS}&region={ceph_target.region}"
    )
    namespace = {"gevent": 31, "eventlet": 32, "threads": 33}[pool]
    worker = Worker(
        worker_url,
        tmp_path,
        pool=pool,
        concurrency=concurrency,
        name=f"pool-{pool}",
        broker=redis_broker,
        namespace=namespace,
        extra_env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{credentials.url}/creds",
            "AWS_EC2_METADATA_DISABLED": "true",
            # gevent's monitor thread reports a greenlet that holds the hub longer than this.
            "GEVENT_MONITOR_THREAD_ENABLE": "true",
            "GEVENT_MAX_BLOCKING_TIME": "0.5",
        },
    )
    worker.start()
    try:
        # The caller reads the store directly (its requests are not the worker's).
        module = point_app_at(ceph_target.url(prefix), Path(worker.broker_dir), redis_broker, namespace)
        started = time.monotonic()
        results = [module.add.delay(i, 1) for i in range(TASKS)]
        try:
            # Well inside pytest's own timeout, so a stuck run shows the worker's log, not only our stack.
            values = ResultSet(results).get(timeout=300)
        except Exception as exc:
            if worker.proc is not None and worker.proc.poll() is None:
                os.kill(worker.proc.pid, signal.SIGUSR2)  # every thread's stack to its log (tests/e2e/app.py)
                time.sleep(2)
            pytest.fail(f"{exc!r}; at the wire {dict(proxy.counts)}\n{worker.tail(30000)}")
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
        proxy.close()
    assert values == [i + 1 for i in range(TASKS)]
    puts = proxy.counts["PUT"]
    report: dict[str, Any] = {
        "connections": proxy.connections,
        "requests": dict(proxy.counts),
        "kinds": dict(proxy.kinds),
        "credential fetches": len(credentials.seen),
        "seconds": round(elapsed, 1),
    }
    print(f"{pool} -c {concurrency}, {TASKS} tasks: {report}")
    # Every task's result is one PUT (the probe's writes come on top, once).
    assert TASKS <= puts <= TASKS + 10, (report, worker.tail())
    assert proxy.connections <= MAX_CONNECTIONS, (report, worker.tail())
    assert len(credentials.seen) <= 2, (report, worker.tail())
    assert "appears to be blocked" not in worker.log.read_text(errors="replace"), worker.tail(20000)
