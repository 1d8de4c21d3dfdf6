"""A task delivered twice (same id) to two worker processes: SUCCESS, once stored, stays.

The prefork worker's two children each remember the ETags of the states they wrote
(s3result/etags.py); the other child's memory is stale or empty. A duplicate's STARTED, its
FAILURE, or a racing twin's states must never replace a SUCCESS already there.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import Worker

pytestmark = pytest.mark.e2e


def _until_logged(worker: Worker, needle: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while worker.log.read_text(errors="replace").count(needle) < count:
        assert time.monotonic() < deadline, worker.tail()
        time.sleep(0.05)


def _meta(app: Any, task_id: str) -> dict[str, Any]:
    meta: dict[str, Any] = app.app.backend.get_task_meta(task_id, cache=False)
    return meta


def test_a_late_duplicate_never_replaces_success(app: Any, worker: Worker) -> None:
    tid = str(uuid.uuid4())
    assert app.tracked.apply_async((1,), task_id=tid).get(timeout=60) == 1
    app.fail.apply_async(("duplicate",), task_id=tid)  # the same id, run again, fails this time
    app.tracked.apply_async((2,), task_id=tid)  # and once more, with another result
    _until_logged(worker, f"tests.e2e.app.fail[{tid}] raised", 1)
    _until_logged(worker, f"tests.e2e.app.tracked[{tid}] succeeded", 2)
    meta = _meta(app, tid)
    assert (meta["status"], meta["result"]) == ("SUCCESS", 1), worker.tail()


def test_twins_racing_in_two_processes_end_in_success(app: Any, worker: Worker) -> None:
    """Both children run the same id at once: each one's remembered ETag goes stale under the other."""
    for _ in range(5):
        tid = str(uuid.uuid4())
        app.tracked.apply_async((1,), task_id=tid)
        app.tracked.apply_async((2,), task_id=tid)
        _until_logged(worker, f"tests.e2e.app.tracked[{tid}] succeeded", 2)
        meta = _meta(app, tid)
        assert meta["status"] == "SUCCESS" and meta["result"] in (1, 2), (meta, worker.tail())
