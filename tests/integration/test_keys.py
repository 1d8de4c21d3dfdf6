"""Task ids that cannot be S3 keys fail with InvalidKey, through the backend, against moto.

Unit side: tests/test_client.py (test_lone_surrogate_is_an_invalid_key).
"""

from __future__ import annotations

import pytest
from celery import Celery

from s3result.errors import InvalidKey


@pytest.mark.parametrize("task_id", ["\ud800", "task-\udfff", "a\udc80b"])
def test_lone_surrogate_task_id_is_invalid_key(s3result_backend_url: str, task_id: str) -> None:
    app = Celery(set_as_current=False)
    app.conf.result_backend = s3result_backend_url
    backend = app.backend
    with pytest.raises(InvalidKey, match="UTF-8"):
        backend.store_result(task_id, 1, "SUCCESS")
    with pytest.raises(InvalidKey):
        backend.get_task_meta(task_id)
    with pytest.raises(InvalidKey):
        backend.forget(task_id)
    with pytest.raises(InvalidKey):
        backend.mget([task_id])
    backend.store_result("plain-id", 1, "SUCCESS")  # the backend still works afterwards
    assert backend.get_task_meta("plain-id")["result"] == 1
