"""A real worker takes its credentials from the container provider, and they rotate mid-run.

The fake container endpoint hands out the moto user's two access keys in turn, each with an
expiry just inside the advisory window, so the worker refreshes (and rotates) every few
seconds while it runs tasks. No task may fail.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from celery import group

from s3result.s3.credentials import ADVISORY_REFRESH
from s3result.testing.store import MotoServer
from tests.fakes import FakeServer, creds_json

from .conftest import Worker, point_app_at

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_container_credentials_rotate_without_a_failed_task(moto_server: MotoServer, tmp_path: Path) -> None:
    keys = itertools.cycle(
        [
            (moto_server.access_key, moto_server.secret_key),
            (moto_server.second_access_key, moto_server.second_secret_key),
        ]
    )
    served: list[str] = []

    def container(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        if path != "/v1/credentials" or headers.get("authorization") != "pod-identity-token":
            return (403, b"{}")
        key, secret = next(keys)
        served.append(key)
        return (200, creds_json(key, secret, token="", expires_in=ADVISORY_REFRESH + 2))

    endpoint = FakeServer(container)
    # No credentials in the URL: the worker must find them through the provider chain.
    url = f"s3result+http://127.0.0.1:{moto_server.port}/{moto_server.bucket}/rotation"
    worker = Worker(
        url,
        tmp_path,
        concurrency=2,
        extra_env={
            "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{endpoint.url}/v1/credentials",
            "AWS_CONTAINER_AUTHORIZATION_TOKEN": "pod-identity-token",
            "AWS_EC2_METADATA_DISABLED": "true",
        },
    )
    worker.start()
    try:
        module = point_app_at(moto_server.url("rotation"), worker.broker_dir)
        results = []
        for batch in range(6):
            results.append(group(module.add.s(batch, i) for i in range(40)).apply_async())
            time.sleep(2.0)
        for batch, res in enumerate(results):
            assert res.get(timeout=120) == [batch + i for i in range(40)]
        log = worker.log.read_text(errors="replace")
        assert " raised " not in log, worker.tail()
        # Each prefork child fetched, then refreshed (rotated) at least once while running.
        assert len(served) >= 4, served
        assert {moto_server.access_key, moto_server.second_access_key} <= set(served)
    finally:
        worker.stop()
        endpoint.close()
