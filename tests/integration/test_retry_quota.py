"""The retry quota lasts: a request that ends in an answer refunds what its retries took.

Pending reads are 404s. Through a network that resets 10% of connections, a read that was
retried and then answered 404 ("not yet") used to keep the quota's tokens, so the quota ran
dry after a few hundred reads and from then on every reset was raised to the caller. Here,
3,000 pending reads through a real fault proxy in front of moto: fewer than 1% may raise
(three attempts each: about 0.1% when every retry is allowed). Unit side: tests/test_retry.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from s3result.errors import S3ResultError
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer

READS = 3000


@pytest.fixture
def resetting(moto_server: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto_server.host, moto_server.port, seed=26, latency=0.0)
    proxy.set_faults(reset_request=0.05, reset_response=0.05)
    yield proxy


def test_pending_reads_through_resets_keep_their_retries(moto_server: MotoServer, resetting: FaultProxy) -> None:
    app = Celery(set_as_current=False)
    app.conf.result_backend = moto_server.url("quota").replace(f":{moto_server.port}/", f":{resetting.port}/")
    backend = app.backend
    raised = 0
    for i in range(READS):
        try:
            assert app.AsyncResult(f"pending-{i}").state == "PENDING"
        except S3ResultError:
            raised += 1
    faults = resetting.stats["reset_request"] + resetting.stats["reset_response"]
    quota = backend.client._quota._tokens  # noqa: SLF001 - the quota has no public reading
    assert faults > READS * 0.07, resetting.stats  # the network really was that bad
    assert raised < READS * 0.01, (raised, resetting.stats, quota)
    assert quota >= 400, (quota, resetting.stats)  # refunded: close to its 500 tokens
