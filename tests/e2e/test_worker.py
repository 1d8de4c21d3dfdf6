"""End to end: a real prefork worker stores results in a real moto server; boto3 checks them."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from celery import chord, group

from s3result.backend import S3Backend
from s3result.testing.store import MotoServer

pytestmark = pytest.mark.e2e


def _key(task_id: str) -> str:
    return f"e2e/celery-task-meta-{task_id}"


def test_success_result_is_stored_and_read(app: Any, boto3_client: Any, moto_server: MotoServer) -> None:
    res = app.add.delay(2, 3)
    assert res.get(timeout=60) == 5
    assert isinstance(res.backend, S3Backend)
    head = boto3_client.head_object(Bucket=moto_server.bucket, Key=_key(res.id))
    assert head["ContentLength"] > 0


def test_failure_keeps_exception_type_and_message(app: Any) -> None:
    res = app.fail.delay("it broke: ሴ")
    with pytest.raises(app.Boom) as exc:
        res.get(timeout=60)
    assert str(exc.value) == "it broke: ሴ"
    assert res.state == "FAILURE"
    assert "Boom" in (res.traceback or "")


def test_group_of_50(app: Any) -> None:
    g = group(app.add.s(i, i) for i in range(50)).apply_async()
    assert g.get(timeout=120) == [i + i for i in range(50)]


def test_chord_with_chord_unlock_fallback(app: Any) -> None:
    res = chord(app.add.s(i, 1) for i in range(10))(app.tsum.s())
    assert res.get(timeout=120) == sum(i + 1 for i in range(10))


def test_forget_removes_the_object(app: Any, boto3_client: Any, moto_server: MotoServer) -> None:
    import botocore.exceptions

    res = app.add.delay(1, 1)
    assert res.get(timeout=60) == 2
    boto3_client.head_object(Bucket=moto_server.bucket, Key=_key(res.id))
    res.forget()
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        boto3_client.head_object(Bucket=moto_server.bucket, Key=_key(res.id))
    assert exc.value.response["Error"]["Code"] == "404"
    assert app.app.AsyncResult(res.id).state == "PENDING"


# A task delivered twice (same id) to two worker processes: SUCCESS, once stored, stays. The
# prefork worker's two children each remember the ETags of the states they wrote
# (s3result/results/etags.py); the other child's memory is stale or empty. A duplicate's STARTED, its
# FAILURE, or a racing twin's states must never replace a SUCCESS already there.


def _until_logged(worker: Any, needle: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while worker.log.read_text(errors="replace").count(needle) < count:
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.05)


def _dup_meta(app: Any, task_id: str) -> dict[str, Any]:
    meta: dict[str, Any] = app.app.backend.get_task_meta(task_id, cache=False)
    return meta


def test_a_late_duplicate_never_replaces_success(app: Any, worker: Any) -> None:
    tid = str(uuid.uuid4())
    assert app.tracked.apply_async((1,), task_id=tid).get(timeout=60) == 1
    app.fail.apply_async(("duplicate",), task_id=tid)  # the same id, run again, fails this time
    app.tracked.apply_async((2,), task_id=tid)  # and once more, with another result
    _until_logged(worker, f"tests.e2e.app.fail[{tid}] raised", 1)
    _until_logged(worker, f"tests.e2e.app.tracked[{tid}] succeeded", 2)
    meta = _dup_meta(app, tid)
    assert (meta["status"], meta["result"]) == ("SUCCESS", 1), worker.tail()


def test_twins_racing_in_two_processes_end_in_success(app: Any, worker: Any) -> None:
    """Both children run the same id at once: each one's remembered ETag goes stale under the other."""
    for _ in range(5):
        tid = str(uuid.uuid4())
        app.tracked.apply_async((1,), task_id=tid)
        app.tracked.apply_async((2,), task_id=tid)
        _until_logged(worker, f"tests.e2e.app.tracked[{tid}] succeeded", 2)
        meta = _dup_meta(app, tid)
        assert meta["status"] == "SUCCESS" and meta["result"] in (1, 2), (meta, worker.tail())
