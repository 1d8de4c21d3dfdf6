"""End to end: a real prefork worker stores results in a real moto server; boto3 checks them."""

from __future__ import annotations

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
