"""Soak: a real worker runs thousands of tasks while a fault proxy breaks the store's traffic,
including a 30 s outage. Every result must be readable afterwards with the right value.

E2E_SOAK_TASKS sets the size (CI: 2,000; 10,000 when opted in). It runs on the filesystem broker
and on Redis (Debian's redis-server, started by the tests). The figures are written to the test's
temp dir and printed (run with -s to see them).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from celery import group

from s3result.results import config
from s3result.s3.client import S3Client
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TASKS = int(os.environ.get("E2E_SOAK_TASKS", "2000"))
FAULTS = {"reset_request": 0.01, "reset_response": 0.01, "truncate": 0.01, "error503": 0.02, "latency": 0.02}


@pytest.mark.parametrize("broker_name", ["filesystem", "redis"])
def test_soak_with_faults_and_an_outage(
    broker_name: str, request: pytest.FixtureRequest, moto_server: MotoServer, tmp_path: Path
) -> None:
    broker = request.getfixturevalue("redis_broker") if broker_name == "redis" else None
    proxy = FaultProxy("127.0.0.1", moto_server.port, seed=2026)
    url = (
        f"s3result+http://{moto_server.access_key}:{moto_server.secret_key}@127.0.0.1:{proxy.port}"
        f"/{moto_server.bucket}/soak?max_attempts=5"
    )
    worker = Worker(url, tmp_path, concurrency=2, extra_env={"E2E_ALWAYS_RETRY": "1"}, broker=broker)
    worker.start()
    try:
        module = point_app_at(url, worker.broker_dir, broker)
        proxy.set_faults(**FAULTS)
        started = time.monotonic()
        batches = []
        for start in range(0, TASKS, 250):
            batches.append(
                group(module.echo.s(f"value-{i}") for i in range(start, min(start + 250, TASKS))).apply_async()
            )
            if start == TASKS // 2:
                proxy.outage(30.0)  # the store "stops" for 30 s in the middle of the run
        ids = [r.id for batch in batches for r in batch.results]
        deadline = time.monotonic() + 900
        direct = S3Client(config.build(url=moto_server.url("soak"), environ={}).s3)
        pending = set(range(len(ids)))
        while pending and time.monotonic() < deadline:
            found = direct.get_many([f"soak/celery-task-meta-{ids[i]}" for i in sorted(pending)])
            for i, got in zip(sorted(pending), found, strict=True):
                if got is not None and b'"SUCCESS"' in got.body:
                    pending.discard(i)
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        # Read every result back, through the backend, with the right value.
        proxy.set_faults()
        backend = module.app.backend
        wrong = []
        for i, task_id in enumerate(ids):
            meta = backend.get_task_meta(task_id, cache=False)
            if meta["status"] != "SUCCESS" or meta["result"] != f"value-{i}":
                wrong.append((task_id, meta["status"]))
        log = worker.log.read_text(errors="replace")
        client_retries = len(re.findall(r"s3result: retrying", log))
        celery_retries = len(re.findall(r"Failed operation", log))
        failed_tasks = len(re.findall(r"Task tests\.e2e\.app\.echo\[[^\]]+\] raised", log))
        report = (
            f"soak on {broker_name}: {len(ids)} tasks in {elapsed:.0f}s; faults injected {dict(proxy.stats)}; "
            f"client retries {client_retries}; Celery backend retries {celery_retries}; "
            f"tasks failed {failed_tasks}; results lost or wrong {len(wrong)}"
        )
        (tmp_path / "soak-report.txt").write_text(report + "\n")
        print(report)
        assert not pending, f"{len(pending)} results never stored; {report}"
        assert not wrong, f"{wrong[:5]}; {report}"
        assert failed_tasks == 0, report
        assert proxy.stats["outage"] == 1 and sum(proxy.stats.values()) > 50, report
    finally:
        proxy.close()
        worker.stop()
