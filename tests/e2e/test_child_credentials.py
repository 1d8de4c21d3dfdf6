"""Prefork children inherit credentials the main process keeps fresh.

The main process of a prefork worker makes no request after its start check, so it never
refreshes its credentials: once they are within the refresh window (15 minutes before an
IAM role's credentials expire, hours into a worker's life), every child it forks fetches
them again on its first request. With ``worker_max_tasks_per_child=1`` that is one call to
the container credentials service (or IMDS) per task, for the rest of the worker's life. The
main process renews them before it forks instead. A real prefork worker, a Redis broker,
moto, and a local container-credentials endpoint that counts its fetches.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3result.testing.store import MotoServer
from tests.brokers import RedisServer
from tests.fakes import FakeServer, creds_json

from .conftest import Worker, point_app_at

pytestmark = pytest.mark.e2e


@pytest.fixture
def expiring_credentials(moto_server: MotoServer) -> Iterator[FakeServer]:
    """The first credentials enter the refresh window (15 minutes before expiry) 4 s after their fetch; later ones last 6 hours."""

    def handler(*_: Any) -> tuple[int, bytes]:
        first = len(server.seen) == 1
        return 200, creds_json(
            moto_server.access_key, moto_server.secret_key, token="", expires_in=15 * 60 + 4 if first else 6 * 3600
        )

    server = FakeServer(handler)
    yield server
    server.close()


def test_children_inherit_renewed_credentials(
    moto_server: MotoServer, redis_broker: RedisServer, expiring_credentials: FakeServer, tmp_path: Path
) -> None:
    url = f"s3result+http://127.0.0.1:{moto_server.port}/{moto_server.bucket}/child-creds"
    worker = Worker(
        url,
        tmp_path,
        concurrency=2,
        name="child-creds",
        broker=redis_broker,
        namespace=43,
        extra_env={
            "E2E_MAX_TASKS_PER_CHILD": "1",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{expiring_credentials.url}/creds",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    worker.start()
    try:
        time.sleep(5)  # hours into the worker's life: its credentials are now due for renewal
        module = point_app_at(moto_server.url("child-creds"), Path(worker.broker_dir), redis_broker, 43)
        results = [module.add.delay(i, 1) for i in range(12)]
        assert [r.get(timeout=120) for r in results] == [i + 1 for i in range(12)]
    finally:
        worker.stop()
    # The start check's fetch; the 2 children forked before the window renew their own; then one
    # renewal in the main process before the next fork, which every later child inherits. A
    # fetch by each of the 12 children made 13.
    assert len(expiring_credentials.seen) <= 4, (len(expiring_credentials.seen), worker.tail())
