"""A flipped byte in a GET answer never decodes into a result: SSE-KMS on moto, a directory
bucket (the testing kit's front) and Ceph RGW, each behind a proxy that changes one byte of
GET bodies (length and headers kept). There the ETag cannot tell (KMS and directory-bucket
ETags are not MD5s); the checksum that travels with every result does.
Unit tests: tests/test_integrity.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from celery import Celery
from celery.result import AsyncResult

from conformance.servers import Target
from s3result.errors import ChecksumMismatch
from s3result.testing.express import DirectoryBucketFront
from s3result.testing.faults import FaultProxy
from s3result.testing.store import MotoServer


def _app(url: str) -> Celery:
    app = Celery("integrity", broker="memory://", set_as_current=False)
    app.conf.result_backend = url
    return app


@pytest.fixture(params=["moto-kms", "directory-bucket", "ceph"])
def store(request: pytest.FixtureRequest, moto_server: MotoServer) -> Iterator[tuple[str, int]]:
    """(backend URL, port the URL names) on each store whose ETags cannot catch a flipped byte."""
    prefix = f"integrity-{uuid.uuid4().hex[:8]}"
    if request.param == "moto-kms":
        yield f"{moto_server.url(prefix)}?sse=aws:kms", moto_server.port
    elif request.param == "directory-bucket":
        with DirectoryBucketFront(moto_server) as front:
            yield front.url(prefix), front.port
    else:
        ceph: Target = request.getfixturevalue("ceph_target")
        yield ceph.url(prefix), int(ceph.endpoint.rsplit(":", 1)[1])


def test_a_flipped_byte_is_read_again_then_raised_never_decoded(store: tuple[str, int]) -> None:
    url, port = store
    proxy = FaultProxy("127.0.0.1", port, seed=3)
    writer, reader = _app(url), _app(url.replace(f":{port}/", f":{proxy.port}/"))
    try:
        task_id = str(uuid.uuid4())
        writer.backend.store_result(task_id, 1234567, "SUCCESS")
        assert reader.backend.get_task_meta(task_id)["result"] == 1234567  # (and a session, if any)
        reader.backend._cache.clear()
        proxy.only_methods = {b"GET"}
        proxy.set_faults(flip_byte=1.0)
        with pytest.raises(ChecksumMismatch, match=f"celery-task-meta-{task_id}"):
            reader.backend.get_task_meta(task_id)
        assert proxy.stats["flip_byte"] == 2  # one retry, then the error
        # A caller waiting on the result gets the error at once, not a wrong value nor a timeout.
        with pytest.raises(ChecksumMismatch):
            AsyncResult(task_id, app=reader).get(timeout=10, interval=0.05)
        assert proxy.stats["flip_byte"] == 4
        # Half the answers flipped: every read is the right value or the error, never a wrong value.
        proxy.set_faults(flip_byte=0.5)
        outcomes = []
        for _ in range(24):
            reader.backend._cache.clear()
            try:
                meta = reader.backend.get_task_meta(task_id, cache=False)
            except ChecksumMismatch:
                outcomes.append("error")
            else:
                outcomes.append("right" if meta["result"] == 1234567 else f"WRONG {meta['result']!r}")
        assert set(outcomes) == {"right", "error"}, outcomes
        assert outcomes.count("right") > outcomes.count("error")  # mostly healed by the one retry
    finally:
        writer.backend.client.close()
        reader.backend.client.close()
        proxy.close()
